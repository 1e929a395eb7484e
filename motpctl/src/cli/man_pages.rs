//! The hidden `man` command: the man pages of motpctl and motp.toml, generated from the
//! command line's definition.

use std::fs;
use std::path::{Path, PathBuf};

use clap::{Args, Command, CommandFactory};

use super::Cli;
use crate::{Fail, Outcome, Status};

/// Write the man pages (motpctl.1 and one page per subcommand) into a directory.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// The directory to write into (created if missing)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Writes `motpctl.1`, `motpctl-<subcommand>.1` (and `motpctl-import-<format>.1`) and
/// `motp.toml.5` into `dir`.
pub fn write_man_pages(dir: &Path) -> Outcome {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    let mut written = Vec::new();
    render_page(&cmd, "motpctl", dir, &mut written)?;
    // `help` gets a page (the main page lists it), but not its own list of subcommands.
    let shown = |c: &&Command| !c.is_hide_set();
    for sub in cmd.get_subcommands().filter(shown) {
        let name = format!("motpctl-{}", sub.get_name());
        render_page(sub, &name, dir, &mut written)?;
        if sub.get_name() == "help" {
            continue;
        }
        for subsub in sub
            .get_subcommands()
            .filter(|c| shown(c) && c.get_name() != "help")
        {
            render_page(
                subsub,
                &format!("{name}-{}", subsub.get_name()),
                dir,
                &mut written,
            )?;
        }
    }
    let config_page = dir.join("motp.toml.5");
    fs::write(&config_page, crate::man5::page())
        .map_err(|e| format!("cannot write {}: {e}", config_page.display()))?;
    written.push(config_page);
    for page in written {
        println!("{}", page.display());
    }
    Ok(Status::Ok)
}

fn render_page(
    cmd: &Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), Fail> {
    let page = cmd
        .clone()
        .name(name.to_owned())
        .bin_name(name.replace('-', " "));
    let man = clap_mangen::Man::new(page)
        .title(name.to_uppercase())
        .section("1")
        .source(format!("motpctl {}", env!("CARGO_PKG_VERSION")))
        .manual("openvpn-motp");
    let mut buf = Vec::new();
    man.render(&mut buf)
        .map_err(|e| format!("cannot render the man page {name}: {e}"))?;
    let path = dir.join(format!("{name}.1"));
    fs::write(&path, buf).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    written.push(path);
    Ok(())
}
