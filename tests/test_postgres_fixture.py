"""The throwaway PostgreSQL fixture (issue 11): a real server, a real password check, a fresh database per test."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


async def test_round_trip_through_sqlalchemy_asyncpg(postgres_url):
    url, password = postgres_url
    assert password not in url
    engine = create_async_engine(url, connect_args={"password": password})
    try:
        async with engine.begin() as connection:
            version = (await connection.execute(text("select version()"))).scalar_one()
            assert version.startswith("PostgreSQL ")
            tables = await connection.execute(text("select count(*) from pg_tables where schemaname = 'public'"))
            assert tables.scalar_one() == 0  # a fresh, empty database
            await connection.execute(text("create table notes (id serial primary key, body text not null)"))
            await connection.execute(text("insert into notes (body) values (:body)"), [{"body": "fox"}, {"body": "🦊"}])
        async with engine.connect() as connection:
            rows = (await connection.execute(text("select body from notes order by id"))).scalars().all()
        assert rows == ["fox", "🦊"]
    finally:
        await engine.dispose()


async def test_the_server_checks_passwords(postgres_url):
    url, password = postgres_url
    for wrong in ({}, {"password": password + "x"}):
        engine = create_async_engine(url, connect_args=wrong)
        try:
            with pytest.raises(Exception, match="password"):
                async with engine.connect() as connection:
                    await connection.execute(text("select 1"))
        finally:
            await engine.dispose()
