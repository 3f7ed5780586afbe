"""Knowledge: files of any length, cut into chunks, found again for each question and cited in the answer.

One module per idea, each imported where it is used (embeddings.py brings numpy):
- readers.py: a file's text with its structure (PDF pages, headings), or one sentence why it cannot be read;
- chunking.py: sections cut into chunks of about 500 tokens that say where they come from;
- embeddings.py: vectors from a provider's embedding model, in batches, and exact cosine search over them;
- fusion.py: reciprocal rank fusion of the full-text ranking and the embeddings' ranking;
- prompting.py: the sources the model is sent within a budget of its context, and the citations kept with a reply.
"""
