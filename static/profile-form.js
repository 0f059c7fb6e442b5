// Profile form: after htmx swaps in the form again with errors (a refused save), put the
// focus on the first invalid field, or on the error summary. (Here, not in an hx-on
// attribute: the Content-Security-Policy allows no inline script, and htmx runs no eval.)
(function () {
  document.addEventListener("htmx:load", function (event) {
    var form = event.target;
    if (!form || form.id !== "profile-form" || !form.querySelector(".form-errors")) { return; }
    (form.querySelector("[aria-invalid=true]") || form.querySelector(".form-errors")).focus();
  });
})();
