//! Latch's integration tests, one binary with a module per capability (one
//! link of the library instead of eleven); run one module with
//! `cargo test --test it -- files::`. `common` is the harness every module shares.

mod common;

mod a11y;
mod accounts;
mod architecture;
mod browser;
mod content;
mod coordination;
mod crash;
mod dav;
mod edge;
mod edge_http;
mod edge_state;
mod edge_vault;
mod files;
mod git_smart;
mod history_index;
mod hostile_dav;
mod hostile_day;
mod hostile_scale;
mod hostile_sets;
mod inbox;
mod lfs;
mod live;
mod mail;
mod model;
mod newcomer_day;
mod openapi;
mod ops;
mod presence;
mod proxy;
mod races;
mod scale;
mod security;
mod sets;
mod stale;
mod upgrade;
