// Light/dark theme: the saved choice, else the system's. Loaded in <head> (no flash).
(function () {
  var saved = null;
  try { saved = localStorage.getItem("berth-theme"); } catch (e) { /* private mode */ }
  if (saved === "light" || saved === "dark") document.documentElement.dataset.theme = saved;
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    button.addEventListener("click", function () {
      var dark = document.documentElement.dataset.theme
        ? document.documentElement.dataset.theme === "dark"
        : window.matchMedia("(prefers-color-scheme: dark)").matches;
      var next = dark ? "light" : "dark";
      document.documentElement.dataset.theme = next;
      try { localStorage.setItem("berth-theme", next); } catch (e) { /* private mode */ }
    });
  });
})();
