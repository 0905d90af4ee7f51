// restic-manager snapshot page (src/http/ui/snapshot): follows the catalog
// job while the snapshot is being catalogued (reloading when it ends),
// keeps the operator's selection of paths per snapshot in session storage
// across folders and pages, sends the Restore dialog as a restore job
// through the JSON API, and refuses a download while the host is offline.
// Needs app.js (window.RM: api, flash). No inline script, no framework.
(function () {
  "use strict";

  var root = document.getElementById("snapshot-page");
  if (!root || !window.RM) {
    return;
  }
  var RM = window.RM;
  var hostId = root.getAttribute("data-host-id");
  var snapshotId = root.getAttribute("data-snapshot-id");
  var KEY = "rm-selection:" + hostId + ":" + snapshotId;
  // Paths listed in the panel; the rest are counted.
  var LISTED = 50;

  // ---- the catalog job ------------------------------------------------------

  function followCatalog() {
    var url = root.getAttribute("data-catalog-events");
    if (!url || typeof EventSource === "undefined") {
      return;
    }
    var source = new EventSource(url);
    source.addEventListener("open", function () {
      root.setAttribute("data-catalog-stream", "open");
    });
    source.addEventListener("status", function (ev) {
      var st = JSON.parse(ev.data);
      if (st.status === "succeeded" || st.status === "failed" || st.status === "cancelled") {
        source.close();
        window.location.reload();
      }
    });
  }

  // ---- the selection ----------------------------------------------------------

  function load() {
    try {
      var list = JSON.parse(window.sessionStorage.getItem(KEY) || "[]");
      return Array.isArray(list) ? list.filter(function (p) { return typeof p === "string"; }) : [];
    } catch (e) {
      return [];
    }
  }

  var selection = load();

  function save() {
    try {
      window.sessionStorage.setItem(KEY, JSON.stringify(selection));
    } catch (e) {
      RM.flash("The selection cannot be kept across pages: " + e.message, "error");
    }
  }

  function has(path) {
    return selection.indexOf(path) >= 0;
  }

  function add(path) {
    if (!has(path)) {
      selection.push(path);
    }
  }

  function remove(path) {
    selection = selection.filter(function (p) { return p !== path; });
  }

  function boxes() {
    return Array.prototype.slice.call(document.querySelectorAll("input.select-entry"));
  }

  function render() {
    var count = document.getElementById("selection-count");
    if (count) {
      count.textContent = String(selection.length);
    }
    var list = document.getElementById("selection-list");
    if (list) {
      var items = selection.slice(0, LISTED).map(function (p) {
        var li = document.createElement("li");
        var code = document.createElement("code");
        code.textContent = p;
        li.appendChild(code);
        return li;
      });
      if (selection.length > LISTED) {
        var more = document.createElement("li");
        more.className = "muted";
        more.textContent = "and " + (selection.length - LISTED) + " more";
        items.push(more);
      }
      list.replaceChildren.apply(list, items);
    }
    var open = document.getElementById("restore-open");
    if (open) {
      open.disabled = selection.length === 0;
    }
    var what = document.getElementById("restore-what");
    if (what) {
      what.textContent = has("/") ? "the whole snapshot"
        : selection.length === 1 ? selection[0] : selection.length + " selected paths";
    }
    var all = boxes();
    all.forEach(function (b) { b.checked = has(b.value); });
    var header = document.getElementById("select-all");
    if (header) {
      var checked = all.filter(function (b) { return b.checked; }).length;
      header.checked = all.length > 0 && checked === all.length;
      header.indeterminate = checked > 0 && checked < all.length;
    }
    root.setAttribute("data-selected", String(selection.length));
  }

  document.addEventListener("change", function (event) {
    var el = event.target;
    if (!(el instanceof HTMLInputElement)) {
      return;
    }
    if (el.classList.contains("select-entry")) {
      if (el.checked) {
        add(el.value);
      } else {
        remove(el.value);
      }
    } else if (el.id === "select-all") {
      boxes().forEach(function (b) {
        if (el.checked) {
          add(b.value);
        } else {
          remove(b.value);
        }
      });
    } else {
      return;
    }
    save();
    render();
  });

  // ---- buttons: whole folder, clear, restore dialog, downloads -----------------

  function dialog() {
    return document.getElementById("restore-dialog");
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) {
      return;
    }
    var download = target.closest("a[data-download]");
    if (download) {
      var presence = document.querySelector("#snapshot-facts [data-presence]");
      if (presence && !presence.classList.contains("badge-online")) {
        event.preventDefault();
        RM.flash("The host is offline: downloads stream from its agent, so they work once it reconnects.", "error");
      }
      return;
    }
    var folder = target.closest("#select-folder");
    if (folder) {
      add(folder.getAttribute("data-select-path"));
      save();
      render();
      return;
    }
    if (target.closest("#selection-clear")) {
      selection = [];
      save();
      render();
      return;
    }
    if (target.closest("#restore-open") && selection.length > 0 && dialog()) {
      var error = document.getElementById("restore-error");
      error.hidden = true;
      dialog().showModal();
      return;
    }
    if (target.closest("#restore-cancel") && dialog()) {
      dialog().close();
    }
  });

  function field(form, name) {
    var el = form.elements.namedItem(name);
    return el ? el : null;
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || form.id !== "restore-form") {
      return;
    }
    event.preventDefault();
    var other = field(form, "target_host_id");
    var host = other && other.value.trim() !== "" ? other.value.trim() : field(form, "target_host").value;
    var body = {
      kind: "restore",
      snapshot_id: form.getAttribute("data-snapshot-id"),
      source_host_id: form.getAttribute("data-source-host"),
      paths: has("/") ? [] : selection.slice(),
      target: field(form, "target").value.trim(),
      overwrite: field(form, "overwrite").value,
      verify: field(form, "verify").checked
    };
    var error = document.getElementById("restore-error");
    var submit = document.getElementById("restore-submit");
    submit.disabled = true;
    RM.api("POST", "/api/v1/hosts/" + encodeURIComponent(host) + "/jobs", body).then(
      function (job) {
        selection = [];
        save();
        window.location.assign("/jobs/" + encodeURIComponent(job.id));
      },
      function (err) {
        submit.disabled = false;
        error.textContent = err.message;
        error.hidden = false;
      }
    );
  });

  render();
  followCatalog();
})();
