// The printable report's "Print or save as PDF" button (inline handlers are refused by the CSP).
document.querySelectorAll("button[data-print]").forEach((button) => {
  button.addEventListener("click", () => window.print());
});
