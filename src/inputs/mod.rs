//! What a run starts from: the configuration and the facts gathered once
//! about the node (with `crate::convert`, the readers, in the same layer).
//!
//! - [`config`]: `/etc/synnefo-upgrade/upgrade.toml` and its drop-ins.
//! - [`node`]: facts about this node (OS codename, init system, roles), and
//!   [`node::Facts`], what a run knows of the node, gathered once.

pub mod config;
pub mod node;
