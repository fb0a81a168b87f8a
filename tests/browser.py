"""Headless Chromium driven through the DevTools protocol, with no network.

The browser runs in a network namespace of its own (``unshare -n``: no
interface but a loopback that is down), so a page that asks for anything
outside the files it was opened from gets nothing; every request it makes is
recorded from the DevTools ``Network`` events, file URLs included. The
protocol runs over ``--remote-debugging-pipe`` (file descriptors 3 and 4, one
JSON message per NUL-terminated chunk): no port, no extra package.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
  for name in CHROMIUM_NAMES:
    path = shutil.which(name)
    if path:
      return path
  return None


def _isolation() -> list[str]:
  """The command prefix that cuts the browser off the network: a new network
  namespace (as root, or as a user where user namespaces are allowed)."""
  unshare = shutil.which("unshare")
  if unshare is None:
    return []
  for prefix in ([unshare, "-n"], [unshare, "-r", "-n"]):
    if subprocess.run(prefix + ["true"], capture_output=True).returncode == 0:
      return prefix
  return []


class Browser:
  """One headless Chromium; `open(url)` loads a page in a fresh tab.

  Args:
    executable: the Chromium binary.
    width: window width in CSS pixels.
    height: window height in CSS pixels.
    timeout: seconds to wait for any one answer or event.
  """

  def __init__(self, executable: str, *, width: int = 1280, height: int = 900, timeout: float = 60.0):
    self.timeout = timeout
    isolation = _isolation()
    self.isolated = bool(isolation)
    self._profile = tempfile.mkdtemp(prefix="lrjax-chromium-")
    to_browser_r, self._to_browser = os.pipe()
    self._from_browser, from_browser_w = os.pipe()
    argv = isolation + [
        executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--remote-debugging-pipe", f"--user-data-dir={self._profile}", f"--window-size={width},{height}",
        "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
        "--disable-background-networking", "--disable-component-update", "--mute-audio",
        # A second fence, in case no namespace could be made: no name resolves
        # and every proxied request goes to a closed port.
        "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
        "about:blank",
    ]
    # The browser reads commands on fd 3 and writes answers on fd 4.
    self._proc = subprocess.Popen(
        ["bash", "-c", f'exec "$@" 3<&{to_browser_r} 4>&{from_browser_w}', "bash", *argv],
        pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(to_browser_r)
    os.close(from_browser_w)
    self._buffer = b""
    self._next_id = 0
    self._events: list[dict] = []

  # --- the protocol -------------------------------------------------------------

  def _read_message(self, deadline: float) -> dict:
    while b"\0" not in self._buffer:
      left = deadline - time.monotonic()
      if left <= 0:
        raise TimeoutError("no answer from chromium")
      ready, _, _ = select.select([self._from_browser], [], [], left)
      if ready:
        chunk = os.read(self._from_browser, 1 << 20)
        if not chunk:
          raise RuntimeError(f"chromium exited ({self._proc.poll()})")
        self._buffer += chunk
    message, _, self._buffer = self._buffer.partition(b"\0")
    return json.loads(message)

  def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
    """Sends one command and returns its result; events that arrive meanwhile are kept."""
    self._next_id += 1
    message = {"id": self._next_id, "method": method, "params": params or {}}
    if session:
      message["sessionId"] = session
    os.write(self._to_browser, json.dumps(message).encode() + b"\0")
    deadline = time.monotonic() + self.timeout
    while True:
      answer = self._read_message(deadline)
      if answer.get("id") == self._next_id:
        if "error" in answer:
          raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})
      self._events.append(answer)

  def wait_for(self, method: str, session: str) -> dict:
    """Waits for the event `method` of `session` (one already kept counts)."""
    deadline = time.monotonic() + self.timeout
    while True:
      for event in self._events:
        if event.get("method") == method and event.get("sessionId") == session:
          return event
      self._events.append(self._read_message(deadline))

  def events(self, method: str, session: str) -> list[dict]:
    return [e["params"] for e in self._events if e.get("method") == method and e.get("sessionId") == session]

  # --- pages --------------------------------------------------------------------------

  def open(self, url: str, *, dark: bool = False) -> str:
    """A new tab with its network recorded, `url` loaded in it; returns the
    tab's session id (for `evaluate`, `requests`, `screenshot`)."""
    target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Network", "Page", "Runtime"):
      self.send(f"{domain}.enable", session=session)
    if dark:
      self.send("Emulation.setEmulatedMedia",
                {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}, session=session)
    self.send("Page.navigate", {"url": url}, session=session)
    self.wait_for("Page.loadEventFired", session)
    return session

  def evaluate(self, expression: str, session: str):
    """The value of a JavaScript expression (a promise is awaited)."""
    result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                            "returnByValue": True}, session=session)
    if "exceptionDetails" in result:
      raise RuntimeError(f"{expression[:80]}...: {result['exceptionDetails']}")
    return result["result"].get("value")

  def requests(self, session: str) -> list[str]:
    """Every URL the tab asked for, in order."""
    return [e["request"]["url"] for e in self.events("Network.requestWillBeSent", session)]

  def failed(self, session: str) -> list[str]:
    """Every request of the tab that failed, with Chromium's error text."""
    by_id = {e["requestId"]: e["request"]["url"] for e in self.events("Network.requestWillBeSent", session)}
    return [f"{by_id.get(e['requestId'], '?')}: {e.get('errorText')}"
            for e in self.events("Network.loadingFailed", session)]

  def screenshot(self, session: str, path: Path) -> None:
    import base64

    data = self.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
    Path(path).write_bytes(base64.b64decode(data))

  def close(self) -> None:
    try:
      self.send("Browser.close")
    except (RuntimeError, TimeoutError, OSError):
      pass
    try:
      self._proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
      self._proc.kill()
      self._proc.wait()
    os.close(self._to_browser)
    os.close(self._from_browser)
    shutil.rmtree(self._profile, ignore_errors=True)
