//! The HTTP API (section 7 of the specification) and the editor.
