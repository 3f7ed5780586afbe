"""The page's stylesheet (most of it the Chat tab's: its chat, model line and sidebar)."""

# Forms in a reply can submit nowhere but here (the Content-Security-Policy, webui/server.py); they are not
# shown either, so nobody types into one.
CSS = """
#model-info #small-model-note { flex-basis: 100%; margin: 2px 0 0; font-size: 0.95em; }
footer { display: none !important; }
#chatbot [data-testid="bot"] form { display: none !important; }
/* The sidebar: new chat and search stay at its top, import at its foot; the chat list scrolls between them. */
/* A reply that failed: the error sentence in the error colour, its note framed in it (the partial text above). */
#chatbot .reply-error { color: #b91c1c; font-weight: 600; }
.dark #chatbot .reply-error { color: #fca5a5; }
#chatbot .thought-group:has(.reply-error) { border: 1px solid var(--error-border-color, #ef4444);
  background: var(--error-background-fill, #fef2f2); border-radius: var(--radius-md); }
/* Tables: the alignment each column asks for (Gradio's own rule puts every cell left); wide tables scroll
   sideways inside the chat, their cells breaking between words only. */
#chatbot .prose :is(th, td)[align="right"] { text-align: right; }
#chatbot .prose :is(th, td)[align="center"] { text-align: center; }
#chatbot .prose table { display: block; max-width: 100%; overflow-x: auto; }
#chatbot .prose :is(th, td) { overflow-wrap: normal; word-break: normal; min-width: 6em; }
/* A picker's long choice ends in "…" before its arrow, not under it. */
#model-row input[role="combobox"] { text-overflow: ellipsis; padding-right: 22px; }
/* The model line: what the model can do, and how much of its context the chat takes. */
#model-info { margin: -8px 0 -6px; }
#model-info .model-info { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; font-size: 0.85em;
  color: var(--body-text-color-subdued); }
#model-info .ability { padding: 0 8px; border-radius: 999px; border: 1px solid var(--border-color-primary); }
#model-info .context { margin-left: auto; display: inline-flex; align-items: center; gap: 6px; }
#model-info .bar { width: 80px; height: 6px; border-radius: 3px; overflow: hidden;
  background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary); }
#model-info .bar > span { display: block; height: 100%; background: var(--color-accent); }
#model-info .context.high .bar > span { background: #d97706; }
#model-info .context.full .bar > span { background: var(--error-text-color, #b91c1c); }
/* On a phone: the offline-model notice in one sentence, so the message box and Send stay on screen (the model and
   versions pickers share a line, each choice cut short with "…"). */
@media (max-width: 768px) {
  #small-model-note .more { display: none; }
}
/* The sidebar's handle: a whole pill, clear of the window's edges (Gradio draws half of one against the edge,
   which reads as cut off), and on a phone inside the open drawer, which takes the whole width. */
#sidebar .toggle-button { border: 1px solid var(--border-color-primary); border-radius: 999px; }
#sidebar:not(.open) .toggle-button { transform: translateX(2px); }
@media (max-width: 768px) {
  #sidebar.open .toggle-button { transform: translateX(-6px) rotate(180deg); }
}
/* The empty chat's hint, centred with room on each side (on a phone it ran against the frame). */
#chatbot .placeholder { margin: auto; padding: 0 20px; text-align: center; }
#sidebar .sidebar-content { height: 100%; display: flex; flex-direction: column; }
#sidebar .sidebar-content > .column { flex: 1 1 auto; min-height: 0; flex-wrap: nowrap; }
#sidebar .sidebar-content > .column > * { flex-shrink: 0; }
#sidebar #chat-list { flex: 1 1 0; min-height: 120px; overflow-y: auto !important; overscroll-behavior: contain; }
"""
