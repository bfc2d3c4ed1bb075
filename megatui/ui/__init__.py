"""The Textual control room. The only package of megatui that imports Textual's
packages (textual, and textual-serve for the browser tabs of `megatui serve`).

Nothing is imported here: `megatui serve` imports `ui.browser_tabs` alone, without
loading the Textual app into the server process."""
