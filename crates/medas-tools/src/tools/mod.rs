//! The tools, one module per group. Each module declares its tools' specs and work and
//! registers them with `inventory::submit!`. The modules themselves are declared by
//! `build.rs` from the files in this folder, so a new tool is one new file (or an addition to
//! an existing one) and nothing else.

include!(concat!(env!("OUT_DIR"), "/tool_modules.rs"));
