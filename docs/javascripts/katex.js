// Typeset the math with the KaTeX copy shipped in docs/vendor/katex (no network needed).
// Reference pages: pymdownx.arithmatex (generic mode) wraps each formula in
// <span class="arithmatex">\( ... \)</span> or <div class="arithmatex">\[ ... \]</div>.
// Notebook pages: Markdown cells keep Jupyter's $ ... $ and $$ ... $$.
document$.subscribe(({ body }) => {
  for (const element of body.querySelectorAll(".arithmatex")) {
    renderMathInElement(element, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  }
  for (const element of body.querySelectorAll(".jp-RenderedMarkdown")) {
    renderMathInElement(element, {
      delimiters: [
        { left: "$$", right: "$$", display: true },
        { left: "$", right: "$", display: false },
      ],
      throwOnError: false,
    });
  }
});
