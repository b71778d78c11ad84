//! What is done to the node: services, boot-time links, policy-rc.d, backups,
//! Synnefo's own commands, the database guard and the wait for the migrations.
//! None of it knows the plan: a step of the plan calls these.
//!
//! - [`services`]: stopping, starting and masking services (systemd over D-Bus,
//!   sysvinit init scripts, or offline under `--root`).
//! - [`bootstart`]: sysvinit boot-time start links of the managed services, toggled as `update-rc.d disable` does.
//! - [`policy_rcd`]: the policy-rc.d decision and its installation.
//! - [`backup`]: database dump and configuration tarball before migrations.
//! - [`synnefo`]: Synnefo's own commands (`snf-manage migrate`, component
//!   re-registration, fix_ip_history).
//! - [`migwait`]: a node that does not migrate waits for the one that does
//!   (`django_migrations` watched every second on one open `psql` session).
//! - [`dbguard`]: no other client of the Synnefo databases before migrating.
//! - [`migorder`]: nodes migrating on one database take turns (Astakos, then
//!   Cyclades, then Pithos), and keep their services down until the last.

pub mod backup;
pub mod bootstart;
pub mod dbguard;
pub mod migorder;
pub mod migwait;
pub mod policy_rcd;
pub mod services;
pub mod synnefo;
