// tokend's dashboard works without JavaScript; this only adds comforts:
// Copy buttons (of a token's value, of DNS records' names and values), and closing an open actions menu on a click elsewhere or Escape.
(function () {
  "use strict";
  document.addEventListener("click", function (ev) {
    var copy = ev.target.closest("[data-copy]");
    if (copy) {
      var field = document.getElementById(copy.getAttribute("data-copy"));
      if (field) {
        // A field's value, or an element's text (a DNS record's name or value).
        var isField = "value" in field && typeof field.select === "function";
        var text = isField ? field.value : field.textContent;
        var select = function () {
          if (isField) {
            field.select();
            return;
          }
          var range = document.createRange();
          range.selectNodeContents(field);
          var sel = window.getSelection();
          sel.removeAllRanges();
          sel.addRange(range);
        };
        var done = function () {
          copy.textContent = "Copied";
          var name = copy.getAttribute("aria-label");
          if (name) copy.setAttribute("aria-label", name.replace(/^Copy\b/, "Copied"));
        };
        var fallback = function () { select(); document.execCommand("copy"); done(); };
        if (navigator.clipboard && window.isSecureContext) {
          if (isField) select();
          navigator.clipboard.writeText(text).then(done, fallback);
        } else {
          fallback();
        }
      }
      return;
    }
    document.querySelectorAll("details.menu[open]").forEach(function (d) {
      if (!d.contains(ev.target)) d.removeAttribute("open");
    });
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "Escape") return;
    document.querySelectorAll("details.menu[open]").forEach(function (d) {
      d.removeAttribute("open");
      var s = d.querySelector("summary");
      if (s) s.focus();
    });
  });
})();
