// svamlgate console: the only script of the console (served as a file; the Content-Security-Policy
// allows no inline script). Auto-refresh of pages that ask for it, copy to clipboard, and the first
// violating pointer of a reply scrolled into view.
(function () {
  "use strict";

  var body = document.body;
  var seconds = parseInt(body.getAttribute("data-refresh") || "0", 10);
  var box = document.getElementById("autorefresh");
  var key = "svamlgate.autorefresh";
  if (seconds > 0 && box) {
    try { box.checked = window.localStorage.getItem(key) !== "off"; } catch (e) { /* storage off */ }
    var timer = null;
    var arm = function () {
      if (timer) { window.clearTimeout(timer); timer = null; }
      if (box.checked) { timer = window.setTimeout(function () { window.location.reload(); }, seconds * 1000); }
    };
    box.addEventListener("change", function () {
      try { window.localStorage.setItem(key, box.checked ? "on" : "off"); } catch (e) { /* storage off */ }
      arm();
    });
    arm();
  }

  var buttons = document.querySelectorAll("button[data-copy]");
  Array.prototype.forEach.call(buttons, function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source) { return; }
      var text = source.textContent;
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { select(source); });
      } else {
        select(source);
      }
    });
  });

  function select(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try { document.execCommand("copy"); } catch (e) { /* the text stays selected */ }
  }

  var mark = document.getElementById("violation");
  if (mark) {
    var details = mark.closest("details");
    if (details) { details.open = true; }
  }
})();
