// Release page: the live log. htmx's sse extension appends each `log` event; this keeps a
// line from being appended twice (a reconnect replays from the page's ?after=N) and follows
// the end of the log while the reader is at the end.
(function () {
  function logBox() { return document.getElementById("release-log"); }
  function atEnd(box) { return box.scrollHeight - box.scrollTop - box.clientHeight < 40; }
  var follow = true;
  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    var message = event.detail || {};
    var box = logBox();
    follow = box ? atEnd(box) : false;
    if (message.type === "log" && message.lastEventId &&
        document.getElementById("log-" + message.lastEventId)) {
      event.preventDefault();
    }
  });
  document.addEventListener("htmx:sseMessage", function () {
    var box = logBox();
    if (box && follow) { box.scrollTop = box.scrollHeight; }
  });
  document.addEventListener("DOMContentLoaded", function () {
    var box = logBox();
    if (box) { box.scrollTop = box.scrollHeight; }
  });
})();
