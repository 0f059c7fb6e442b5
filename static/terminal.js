// The pod terminal (templates/deployments/pod_terminal.html): xterm.js wired to the panel's
// WebSocket (deployments/views/terminal.py). Binary frames carry bytes both ways; text
// frames are JSON: {"resize": {cols, rows}} from here, {"status": "open"|"closed"} back.
(function () {
  "use strict";

  function start() {
    const box = document.getElementById("terminal");
    if (!box || !window.Terminal || !window.FitAddon) return;
    const status = document.getElementById("terminal-status");
    const again = document.getElementById("terminal-reconnect");
    const encoder = new TextEncoder();
    const term = new window.Terminal({
      cursorBlink: true,
      scrollback: 5000,
      fontFamily: "ui-monospace, SFMono-Regular, Menlo, monospace",
      fontSize: 14,
    });
    const fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(box);
    fit.fit();
    let socket = null;

    function say(text, state) {
      status.textContent = text;
      status.dataset.state = state;
    }

    function sendSize() {
      if (socket && socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({ resize: { cols: term.cols, rows: term.rows } }));
      }
    }

    // the Clipboard API exists only on https:// and localhost pages; elsewhere (a panel
    // reached over plain HTTP on a LAN) the older copy command still works
    function copy(text) {
      if (!text) return;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text);
        return;
      }
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
      term.focus();
    }

    function send(bytes) {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(bytes);
    }

    function connect() {
      const url = new URL(box.dataset.socket, window.location.href);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      say("Connecting…", "connecting");
      again.hidden = true;
      socket = new WebSocket(url);
      socket.binaryType = "arraybuffer";
      socket.addEventListener("message", (event) => {
        if (typeof event.data !== "string") {
          term.write(new Uint8Array(event.data));
          return;
        }
        const message = JSON.parse(event.data);
        if (message.status === "open") {
          say(`Connected to ${message.pod} / ${message.container}`, "open");
          sendSize();
          term.focus();
        } else if (message.status === "closed") {
          say(`Closed: ${message.reason}`, "closed");
        }
      });
      socket.addEventListener("close", () => {
        if (status.dataset.state !== "closed") {
          say("Closed: the panel refused the terminal or could not be reached", "closed");
        }
        socket = null;
        again.hidden = false;
      });
    }

    // a long paste goes in pieces: the server takes 64 KiB in one message at most
    const PIECE = 16 * 1024;
    term.onData((data) => {
      const bytes = encoder.encode(data);
      for (let at = 0; at < bytes.length; at += PIECE) send(bytes.subarray(at, at + PIECE));
    });
    // mouse reports in some programs: bytes given as a string of char codes
    term.onBinary((data) => send(Uint8Array.from(data, (c) => c.charCodeAt(0))));
    term.onResize(sendSize);
    window.addEventListener("resize", () => fit.fit());
    term.attachCustomKeyEventHandler((event) => {
      if (event.type !== "keydown" || !event.ctrlKey || !event.shiftKey) return true;
      if (event.code === "KeyC") {
        copy(term.getSelection());
        event.preventDefault();
        return false;
      }
      // Ctrl+Shift+V: the browser pastes into xterm's input, which sends it
      return event.code !== "KeyV";
    });
    again.addEventListener("click", () => {
      term.reset();
      connect();
    });
    connect();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
