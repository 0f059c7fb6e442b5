// Every live page: a region a stream sends again (on connect, on reconnect) is not replaced
// when the page already shows that HTML. The server marks such regions with data-digest
// (templatetags/streams.py: the same digest for the same HTML, from the page or the stream);
// replacing an element with itself would drop a click in progress, the keyboard focus and a
// text selection in it.
(function () {
  var DIGEST = /^\s*<[A-Za-z][\w-]*\s+data-digest="([0-9a-f]+)"/;

  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    var region = event.target;
    if (!region || !region.getAttribute) { return; }
    var shown = region.getAttribute("data-digest");
    if (!shown) {
      // a swap inside a marked region (a status row, the health counts): the region's HTML
      // is no longer what its digest says, so the next copy of the region is swapped in
      // even when it equals the HTML the page first had (a row changed, then changed back
      // while the stream was down: the reconnect's table must replace the stale row)
      var outer = region.parentElement ? region.parentElement.closest("[data-digest]") : null;
      if (outer) { outer.removeAttribute("data-digest"); }
      return;
    }
    var sent = DIGEST.exec(String((event.detail || {}).data || ""));
    if (sent && sent[1] === shown) { event.preventDefault(); }
  });
})();
