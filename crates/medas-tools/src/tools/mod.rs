//! The tools, one module per group. Each module declares its tools' specs and work and
//! registers them; nothing else needs to change when a tool is added.

pub mod cast;
pub mod io;
