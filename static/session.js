// Every live page: a stream whose access ended (logged out in another tab, the session
// deleted or expired, the password changed, the user deactivated, deleted or removed from
// its role) sends `login-required` as its last event. Stop the EventSource (it would only
// reconnect into a 401), say so, and load the page again: the server answers with the login
// form (next= this page) or, for a user still signed in who lost the role, the 403 page.
(function () {
  function signedOut() {
    var main = document.getElementById("main") || document.body;
    var list = document.createElement("ul");
    list.className = "messages signed-out";
    list.setAttribute("role", "alert");
    var item = document.createElement("li");
    item.className = "msg-error";
    item.textContent = "Signed out: this page's access ended. Opening the login page…";
    list.appendChild(item);
    main.insertBefore(list, main.firstChild);
  }

  document.addEventListener("htmx:sseOpen", function (event) {
    var source = (event.detail || {}).source;
    if (!source || source.helmdeckWatched) { return; }
    source.helmdeckWatched = true;
    source.addEventListener("login-required", function () {
      source.close();
      signedOut();
      window.location.reload();
    });
  });
})();
