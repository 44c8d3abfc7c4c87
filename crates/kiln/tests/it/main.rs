//! kiln's integration tests: the real `kiln` binary on real workspaces in temp dirs.
//!
//! One test binary with a module per concern, so helpers are compiled once and the
//! example workspace is built once per run (`common::built_example`), then copied.

mod common;
mod faults;

mod affected;
mod allocator;
mod bad_input;
mod build;
mod cache;
mod cargo_config;
mod ci;
mod dist;
mod host_tools;
mod house;
mod image;
mod install;
mod memory;
mod native;
mod precise_keys;
mod realworld;
mod release;
mod reliability;
mod remote;
mod setup;
mod supply_chain;
mod surface;
