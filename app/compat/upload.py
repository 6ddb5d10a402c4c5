"""The upload size cap, enforced in the browser before a chosen file is read or sent.

Panel's ``FileInput`` (1.9) sends a chosen file whole, base64, in one websocket message, and
has no size-limit parameter (``FileDropper`` has ``max_file_size`` and chunked uploads, but is
another widget, with FilePond's own refusal text). A file over the websocket's message cap
closed the connection and left a dead page (issue 16). :func:`install_upload_guard` refuses
such a file in the page instead: nothing is sent, the page says why (the file name shown as
text), the session lives on. It relies on how BokehJS's ``FileInputView`` reads a file
(:data:`PRIVATE_USES`), so it is installed only on the tested Bokeh versions; elsewhere the
server's own size checks stand and an oversized file ends the connection with Panel's
disconnect notification (which names "a message over its size limit").
"""

from __future__ import annotations

from nbody_explorer.compat import PrivateUse, version_tested

__all__ = ["PRIVATE_USES", "UPLOAD_GUARD_JS", "install_upload_guard"]

PRIVATE_USES = (
    PrivateUse(
        "bokeh", "FileInputView reads a chosen File with FileReader.prototype.readAsDataURL (BokehJS 3.9)",
        "a file over the cap is refused before it is read or sent, with the page's own message, "
        "instead of closing the websocket (tests/ui/test_server_ui.py, tests/ui/test_hostile_ui.py)",
        "not installed: the server refuses oversized files it receives; one past the websocket's "
        "message cap closes the connection (Panel's disconnect notification says so)",
    ),
)

# Runs in the browser when the page is ready; only a File (a file the user chose) over the cap
# is refused: other Blob reads pass through untouched. The file name is shown with textContent
# (never parsed as HTML).
UPLOAD_GUARD_JS = """
if (!window.__nbodyUploadGuard) {
  window.__nbodyUploadGuard = true;
  const read = FileReader.prototype.readAsDataURL;
  const mb = (n) => (n / 1e6).toFixed(n < 1e7 ? 2 : 1) + " MB";
  FileReader.prototype.readAsDataURL = function (blob) {
    if (typeof File !== "undefined" && blob instanceof File && blob.size > limit) {
      let box = document.getElementById("nbody-upload-refused");
      if (!box) {
        box = document.createElement("div");
        box.id = "nbody-upload-refused";
        box.setAttribute("role", "alert");
        box.style.cssText = "position:fixed;top:72px;left:50%;transform:translateX(-50%);z-index:10000;" +
          "background:#f8d7da;color:#58151c;border:1px solid #f1aeb5;border-radius:6px;padding:10px 16px;" +
          "max-width:80%;font:14px sans-serif;box-shadow:0 2px 8px rgba(0,0,0,.2);cursor:pointer";
        box.addEventListener("click", () => box.remove());
        document.body.appendChild(box);
      }
      let size = mb(blob.size), cap = mb(limit);
      if (size === cap) { size = blob.size + " bytes"; cap = limit + " bytes"; }  // just over the cap
      box.textContent = "Not uploaded: \\u201c" + (blob.name || "file") + "\\u201d is " + size +
        "; this server accepts files up to " + cap + ". Nothing was sent and the session " +
        "keeps running. (Click to dismiss.)";
      return;  // never read: the widget never sends it
    }
    return read.call(this, blob);
  };
}
"""


def install_upload_guard(document, max_bytes: int) -> bool:
    """Refuse files over ``max_bytes`` in the page of ``document`` (a Bokeh ``Document``),
    before they are read or sent.

    Returns:
        Whether the guard was installed (False outside the tested Bokeh versions).
    """
    if not version_tested("bokeh"):
        return False
    from bokeh.models import CustomJS

    document.js_on_event("document_ready", CustomJS(args={"limit": int(max_bytes)}, code=UPLOAD_GUARD_JS))
    return True
