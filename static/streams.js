// Every live page: a region a stream sends again (on connect, on reconnect) is not replaced
// when the page already shows that HTML. The server marks such regions with data-digest
// (templatetags/streams.py: the same digest for the same HTML, from the page or the stream);
// replacing an element with itself would drop a click in progress, the keyboard focus and a
// text selection in it.
(function () {
  var DIGEST = /^\s*<[A-Za-z][\w-]*\s+data-digest="([0-9a-f]+)"/;

  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    var region = event.target;
    var shown = region && region.getAttribute ? region.getAttribute("data-digest") : null;
    if (!shown) { return; }
    var sent = DIGEST.exec(String((event.detail || {}).data || ""));
    if (sent && sent[1] === shown) { event.preventDefault(); }
  });
})();
