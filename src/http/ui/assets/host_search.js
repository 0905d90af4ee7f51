// restic-manager web UI: the maintenance host search of the repositories
// page (loaded by that page only; needs app.js's window.RM). The page
// names the first hosts attached to a repository in its maintenance host
// <select>; with more attached than that, an
// <input type="search" data-host-search="SELECT-ID" data-repository-id>
// fills the select with the attached hosts whose name contains what is
// typed, from the paged host API (GET /api/v1/hosts?repository_id=&q=),
// so any one of 10,000 can be chosen. The "any host" choice and the
// current one stay; Enter in the field does not send the form.
(function () {
  "use strict";

  var LIMIT = 50;
  var DELAY_MS = 250;

  function option(value, label, selected) {
    var o = document.createElement("option");
    o.value = value;
    o.textContent = label;
    if (selected) {
      o.selected = true;
    }
    return o;
  }

  // Replaces the select's choices with `hosts`, keeping the empty
  // ("any host") choice and whatever is chosen now.
  function fill(select, hosts, total) {
    var chosen = select.value;
    var keep = [];
    Array.prototype.forEach.call(select.options, function (o) {
      if (o.value === "" || o.value === chosen || o.defaultSelected) {
        keep.push(o);
      }
    });
    while (select.firstChild) {
      select.removeChild(select.firstChild);
    }
    var seen = {};
    keep.forEach(function (o) {
      seen[o.value] = true;
      select.appendChild(o);
    });
    hosts.forEach(function (h) {
      if (!seen[h.id]) {
        seen[h.id] = true;
        var label = h.display_name ? h.hostname + " (" + h.display_name + ")" : h.hostname;
        select.appendChild(option(h.id, label || h.id, false));
      }
    });
    select.value = chosen;
    select.setAttribute("data-matches", String(total));
  }

  function attach(input) {
    var select = document.getElementById(input.getAttribute("data-host-search"));
    var repository = input.getAttribute("data-repository-id");
    var status = document.getElementById(input.getAttribute("data-host-search-status"));
    if (!select || !repository || !window.RM) {
      return;
    }
    var timer = null;
    var latest = 0;
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") {
        ev.preventDefault();
      }
    });
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var asked = ++latest;
        var path = "/api/v1/hosts?limit=" + LIMIT +
          "&repository_id=" + encodeURIComponent(repository) +
          "&q=" + encodeURIComponent(input.value.trim());
        window.RM.api("GET", path).then(function (page) {
          if (asked !== latest) {
            return; // a later search answers
          }
          fill(select, page.items || [], page.total || 0);
          if (status) {
            status.textContent = page.total > LIMIT
              ? page.total + " hosts match; the first " + LIMIT + " are listed"
              : page.total + (page.total === 1 ? " host matches" : " hosts match");
          }
        }).catch(function (err) {
          if (asked === latest && status) {
            status.textContent = err.message;
          }
        });
      }, DELAY_MS);
    });
  }

  function init() {
    document.querySelectorAll("input[data-host-search]").forEach(attach);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
