// Pod log viewer. htmx's sse extension appends each `line` event to #pod-log; this adds
// pause (events are kept aside while paused and appended on resume, none lost), a live
// filter (hides lines without the text, new ones included), following the end, and keeps
// the stream URL's `after=` at the last event, so a reconnect that htmx makes with a new
// EventSource (no Last-Event-ID) still resumes where the page is.
(function () {
  var MAX_LINES = 20000;
  var paused = false;
  var held = [];
  var heldLines = 0;
  var filtered = 0; // lines of #pod-log already checked against the filter

  function box() { return document.getElementById("pod-log"); }
  function live() { return document.getElementById("log-live"); }
  function statusLine(text) {
    var el = document.getElementById("log-status");
    if (el) { el.textContent = text; }
  }
  function needle() {
    var input = document.getElementById("log-filter");
    return input ? input.value.toLowerCase() : "";
  }
  function following() {
    var follow = document.getElementById("log-follow");
    return !follow || follow.checked;
  }
  function countLines(html) { return html.split('class="log-line"').length - 1; }

  function applyFilter(from) {
    var lines = box().children;
    var text = needle();
    for (var i = from; i < lines.length; i++) {
      lines[i].hidden = text !== "" && lines[i].textContent.toLowerCase().indexOf(text) === -1;
    }
    filtered = lines.length;
  }

  function settle() {
    var el = box();
    while (el.children.length > MAX_LINES) { el.removeChild(el.firstElementChild); filtered--; }
    applyFilter(Math.max(0, filtered));
    var empty = document.querySelector(".log-empty");
    if (empty && el.children.length) { empty.hidden = true; }
    if (following() && !paused) { el.scrollTop = el.scrollHeight; }
  }

  function rememberPosition(token) {
    var el = live();
    var url = el && el.getAttribute("sse-connect");
    if (!url || !token) { return; }
    var next = url.replace(/([?&])after=[^&]*/, "$1after=" + encodeURIComponent(token));
    el.setAttribute("sse-connect", next);
    box().setAttribute("data-token", token);
  }

  function setPaused(value) {
    paused = value;
    var button = document.getElementById("log-pause");
    button.setAttribute("aria-pressed", String(paused));
    if (paused) {
      button.textContent = "Resume";
      statusLine("Paused: new lines are kept and shown when you resume.");
      return;
    }
    if (held.length) { box().insertAdjacentHTML("beforeend", held.join("")); }
    held = [];
    heldLines = 0;
    button.textContent = "Pause";
    statusLine("Live: new lines appear as they are written.");
    settle();
  }

  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    var message = event.detail || {};
    if (message.type !== "line" || !box()) { return; }
    rememberPosition(message.lastEventId);
    if (paused) {
      event.preventDefault();
      held.push(message.data);
      heldLines += countLines(message.data);
      document.getElementById("log-pause").textContent = "Resume (" + heldLines + " new)";
      statusLine("Paused: " + heldLines + " new line" + (heldLines === 1 ? "" : "s") +
        " kept for when you resume.");
    }
  });
  document.addEventListener("htmx:sseMessage", function (event) {
    if ((event.detail || {}).type === "line" && box()) { settle(); }
  });
  document.addEventListener("htmx:sseOpen", function (event) {
    var source = (event.detail || {}).source;
    if (!source || !box()) { return; }
    source.addEventListener("end", function (end) {
      statusLine("The log ended: " + end.data + ". Reload to look again.");
      document.querySelector(".log-live-controls").hidden = true;
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    var el = box();
    if (!el) { return; }
    var controls = document.querySelector(".log-live-controls");
    if (controls && el.hasAttribute("sse-swap")) { controls.hidden = false; }
    var pause = document.getElementById("log-pause");
    if (pause) { pause.addEventListener("click", function () { setPaused(!paused); }); }
    var follow = document.getElementById("log-follow");
    if (follow) { follow.addEventListener("change", settle); }
    var filter = document.getElementById("log-filter");
    if (filter) { filter.addEventListener("input", function () { applyFilter(0); }); }
    applyFilter(0);
    el.scrollTop = el.scrollHeight;
  });
})();
