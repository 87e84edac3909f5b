// escalator console: progressive enhancement only. Every page works without this file.
// 1. Forms with data-confirm ask first.  2. [data-live] regions re-fetch their fragment.
// 3. [data-copy] buttons copy the input before them.
"use strict";

document.addEventListener("submit", function (event) {
  var message = event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});

document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) return;
  var input = button.parentElement.querySelector("input");
  if (input && navigator.clipboard) {
    navigator.clipboard.writeText(input.value).then(function () {
      button.textContent = "Copied";
    });
  }
});

function live(region) {
  var url = region.getAttribute("data-live");
  var every = parseInt(region.getAttribute("data-every"), 10) || 5000;
  var last = null;
  function busy() {
    // Never swap the list under a person who is choosing something in it.
    var active = document.activeElement;
    return active && region.contains(active) && active.tagName === "SELECT";
  }
  function poll() {
    if (document.hidden || busy()) {
      window.setTimeout(poll, every);
      return;
    }
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (response.status === 401) {
          window.location.reload(); // the session ended: the page sends us to the login
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== last) {
          last = html;
          region.innerHTML = html;
        }
      })
      .catch(function () { /* offline for a moment: try again next round */ })
      .then(function () { window.setTimeout(poll, every); });
  }
  window.setTimeout(poll, every);
}

document.querySelectorAll("[data-live]").forEach(live);
