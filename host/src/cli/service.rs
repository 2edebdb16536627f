//! `caxton service unit`: the systemd unit of `examples/systemd`, with
//! `ExecStart` naming this binary, ready for /etc/systemd/system.

use clap::Subcommand;

/// The unit as shipped; its `ExecStart` names the usual install path.
const UNIT: &str = include_str!("../../../examples/systemd/caxton.service");
const SHIPPED_PATH: &str = "/usr/local/bin/caxton";

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Print the systemd unit (hardened: its own user, a read-only system,
    /// MemoryMax, restart on failure) with ExecStart naming this binary.
    /// Install: `caxton service unit > /etc/systemd/system/caxton.service`,
    /// then `systemctl daemon-reload && systemctl enable --now caxton`.
    Unit,
}

impl ServiceCommand {
    pub fn run(&self) -> anyhow::Result<()> {
        match self {
            ServiceCommand::Unit => {
                let exe = std::env::current_exe()?;
                let exe = exe.canonicalize().unwrap_or(exe);
                let Some(path) = exe.to_str().filter(|p| !p.contains(char::is_whitespace)) else {
                    anyhow::bail!(
                        "{} has spaces or is not UTF-8; copy caxton to {SHIPPED_PATH} and run it from there",
                        exe.display()
                    );
                };
                // The unit hides these from the service (ProtectHome,
                // PrivateTmp): it could not start a binary there.
                if ["/home/", "/root/", "/tmp/", "/var/tmp/", "/run/user/"]
                    .iter()
                    .any(|hidden| path.starts_with(hidden))
                {
                    eprintln!(
                        "warning: the unit hides {path} from the service (ProtectHome, PrivateTmp), so it would not start; \
                         install caxton first (sudo install -m 0755 {path} {SHIPPED_PATH}) and run {SHIPPED_PATH} service unit"
                    );
                }
                // systemd expands `%` specifiers in ExecStart.
                print!("{}", UNIT.replace(SHIPPED_PATH, &path.replace('%', "%%")));
                Ok(())
            }
        }
    }
}
