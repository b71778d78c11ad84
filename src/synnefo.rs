//! Synnefo's own commands: `snf-manage migrate`, output streamed to the journal.

use anyhow::{bail, Result};

use crate::exec;
use crate::fsx::Root;

/// Runs `snf-manage migrate --noinput`, each output line a journal entry of
/// step `step`. Fails with the exit status and what to do.
pub fn migrate(root: &Root, phase: &str, step: &str) -> Result<String> {
    let snf_manage = exec::find(root, "snf-manage")?;
    let program = snf_manage.to_string_lossy();
    let status = exec::run_logged(phase, step, &[&program, "migrate", "--noinput"], &[])?;
    if !status.success() {
        bail!(
            "'snf-manage migrate' failed ({status}); its output is in 'journalctl SYNNEFO_UPGRADE_STEP={step}'; \
             fix the cause, then run 'synnefo-upgrade finish' (or restart synnefo-upgrade-finish.service)"
        );
    }
    Ok("database migrations applied".into())
}
