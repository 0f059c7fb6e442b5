// Profile form: a link to #component-<name>-<field> (from a diagnosis on the status or
// profile page) opens the closed "Build and probes" section holding that field and puts
// the cursor in it. Without JavaScript the browser still scrolls to the field.
(function () {
  function focusAnchor() {
    var id = decodeURIComponent(location.hash.slice(1));
    var target = id && document.getElementById(id);
    if (!target || !target.classList.contains("field")) { return; }
    for (var el = target.parentElement; el; el = el.parentElement) {
      if (el.tagName === "DETAILS") { el.open = true; }
    }
    var input = target.querySelector("input, select, textarea");
    target.scrollIntoView({block: "center"});
    if (input) { input.focus(); }
  }
  // The browser's own scroll to the fragment moves focus to the page after loading, so
  // focus once it is done (and early too, for a page that is slow to finish loading).
  document.addEventListener("DOMContentLoaded", focusAnchor);
  window.addEventListener("load", function () { setTimeout(focusAnchor, 0); });
  window.addEventListener("hashchange", focusAnchor);
})();
