//! What the tests of commands that use the data folder share: `medas` run with `MEDAS_DATA`
//! set, expected to succeed (its standard output) or to fail (its message, never a panic).
#![allow(dead_code)] // each test binary uses some of them

use std::path::Path;
use std::process::{Command, Output};

pub fn medas(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medas")).args(args).env("MEDAS_DATA", data).output().expect("run medas")
}

pub fn ok(data: &Path, args: &[&str]) -> String {
    let out = medas(data, args);
    assert!(out.status.success(), "medas {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub fn fails(data: &Path, args: &[&str]) -> String {
    let out = medas(data, args);
    assert!(!out.status.success(), "medas {args:?} should fail");
    let message = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!message.contains("panicked"), "{message}");
    message
}
