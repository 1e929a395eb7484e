//! Changing motp.toml in place: keep every comment, the order and the formatting (toml_edit),
//! keep the file's owner and mode, refuse to write anything the plugin would refuse, and replace
//! the file atomically (a temporary file in the same directory, fsync, rename, fsync the
//! directory), so the plugin never reads a half-written config.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use motp::config::{Config, MAX_CONFIG_BYTES};
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, TableLike, Value};

use crate::Fail;

/// motp.toml read for editing.
pub struct ConfigFile {
    /// Where the text really lives (symlinks resolved), which is the file that gets replaced.
    real_path: PathBuf,
    /// The path as the admin gave it, for messages.
    pub path: PathBuf,
    original: String,
    mode: u32,
    uid: u32,
    gid: u32,
    pub doc: DocumentMut,
}

/// Reads a config file as text, with the same size limit as the plugin.
pub fn read_text(path: &Path) -> Result<(String, fs::Metadata), Fail> {
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(Fail(format!("{} is not a regular file", path.display())));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| {
            format!(
                "cannot read {}: {e} (it must be UTF-8 text)",
                path.display()
            )
        })?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Fail(format!(
            "{} is too large to be a motp.toml",
            path.display()
        )));
    }
    Ok((text, meta))
}

/// Parses text for editing. A syntax error is reported through the plugin's own parser, whose
/// messages never quote the offending line (it may hold a secret).
pub fn parse_document(path: &Path, text: &str) -> Result<DocumentMut, Fail> {
    text.parse::<DocumentMut>()
        .map_err(|_| match Config::parse(path, text) {
            Err(e) => Fail(e.to_string()),
            Ok(_) => Fail(format!("{}: not valid TOML", path.display())),
        })
}

impl ConfigFile {
    /// Opens the config for editing; it must already be a config the plugin accepts.
    pub fn open(path: &Path) -> Result<ConfigFile, Fail> {
        let real_path =
            fs::canonicalize(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let (original, meta) = read_text(&real_path)?;
        if let Err(e) = Config::parse(path, &original) {
            return Err(Fail(format!(
                "the config is already invalid, so motpctl will not edit it: {e}"
            )));
        }
        let doc = parse_document(path, &original)?;
        Ok(ConfigFile {
            real_path,
            path: path.to_owned(),
            original,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            doc,
        })
    }

    /// The `users` table, created (as an implicit table, so no bare `[users]` header appears)
    /// when `create` is set.
    fn users_item(&mut self, create: bool) -> Result<Option<&mut Item>, Fail> {
        if !self.doc.contains_key("users") {
            if !create {
                return Ok(None);
            }
            let mut users = Table::new();
            users.set_implicit(true);
            self.doc.insert("users", Item::Table(users));
        }
        let item = &mut self.doc["users"];
        if item.as_table_like().is_none() {
            return Err(Fail(format!(
                "{}: `users` is not a table; expected [users.NAME] sections",
                self.path.display()
            )));
        }
        Ok(Some(item))
    }

    /// The user's table (a `[users.NAME]` section, or an inline table).
    pub fn user_mut(&mut self, name: &str) -> Result<&mut dyn TableLike, Fail> {
        let path = self.path.display().to_string();
        let missing = || Fail(format!("no user `{name}` in {path}"));
        let users = self.users_item(false)?.ok_or_else(missing)?;
        users
            .as_table_like_mut()
            .and_then(|t| t.get_mut(name))
            .and_then(|u| u.as_table_like_mut())
            .ok_or_else(missing)
    }

    /// The table of one of the user's tokens: the user's own table for `None`, else the
    /// `[[users.NAME.tokens]]` entry whose `name` is `token`.
    pub fn token_mut(
        &mut self,
        name: &str,
        token: Option<&str>,
    ) -> Result<&mut dyn TableLike, Fail> {
        let path = self.path.display().to_string();
        let user = self.user_mut(name)?;
        let Some(token) = token else {
            return Ok(user);
        };
        let missing = || Fail(format!("no token `{token}` of user `{name}` in {path}"));
        match user.get_mut("tokens") {
            Some(Item::ArrayOfTables(entries)) => entries
                .iter_mut()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(token))
                .map(|t| t as &mut dyn TableLike)
                .ok_or_else(missing),
            Some(Item::Value(Value::Array(entries))) => entries
                .iter_mut()
                .filter_map(|v| v.as_inline_table_mut())
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(token))
                .map(|t| t as &mut dyn TableLike)
                .ok_or_else(missing),
            _ => Err(missing()),
        }
    }

    /// Adds a `[[users.NAME.tokens]]` entry to an existing user, right after the user's table
    /// and its other tokens. `fields` must start with the token's `name`.
    pub fn add_token(&mut self, name: &str, fields: Vec<(&str, Value)>) -> Result<(), Fail> {
        let path = self.path.display().to_string();
        let token = fields
            .iter()
            .find(|(k, _)| *k == "name")
            .and_then(|(_, v)| v.as_str())
            .unwrap_or("")
            .to_owned();
        self.user_mut(name)?;
        if self.token_mut(name, Some(&token)).is_ok() {
            return Err(Fail(format!(
                "user `{name}` already has a token named `{token}` in {path}"
            )));
        }
        let Some(Item::Table(user)) = self
            .users_item(false)?
            .and_then(|u| u.as_table_mut())
            .and_then(|t| t.get_mut(name))
        else {
            return Err(Fail(format!(
                "user `{name}` in {path} is not a [users.{name}] section (an inline table): \
                 add the token to the file by hand"
            )));
        };
        // After the user's header, or after its last token.
        let mut after = user.position();
        let entries = match user.get_mut("tokens") {
            None => {
                user.insert("tokens", Item::ArrayOfTables(ArrayOfTables::new()));
                user.get_mut("tokens")
                    .and_then(|t| t.as_array_of_tables_mut())
            }
            Some(Item::ArrayOfTables(entries)) => {
                after = entries.iter().filter_map(|t| t.position()).max().or(after);
                Some(entries)
            }
            Some(_) => None,
        };
        if entries.is_none() {
            return Err(Fail(format!(
                "the tokens of user `{name}` in {path} are not [[users.{name}.tokens]] \
                 sections: add the token to the file by hand"
            )));
        }
        let new = after.map_or(0, |p| p + 1);
        shift_positions(self.doc.as_table_mut(), new);
        let Some(Item::Table(user)) = self.doc["users"]
            .as_table_mut()
            .and_then(|t| t.get_mut(name))
        else {
            unreachable!("found above");
        };
        let entries = user
            .get_mut("tokens")
            .and_then(|t| t.as_array_of_tables_mut())
            .expect("created above");
        let mut table = Table::new();
        for (key, value) in fields {
            table.insert(key, Item::Value(value));
        }
        table.decor_mut().set_prefix(
            "
",
        );
        table.set_position(new);
        entries.push(table);
        Ok(())
    }

    /// Adds `[users.NAME]` after the last user (or at the end), separated by a blank line.
    pub fn add_user(&mut self, name: &str, fields: Vec<(&str, Value)>) -> Result<(), Fail> {
        let after = last_user_position(&self.doc);
        let path = self.path.display().to_string();
        if self
            .users_item(false)?
            .and_then(|u| u.as_table_like())
            .is_some_and(|t| t.contains_key(name))
        {
            return Err(Fail(format!("user `{name}` already exists in {path}")));
        }
        // With no [section] yet, the file's comments are its "trailing" text, which is printed
        // after every table: move them in front of the new one so they stay on top.
        let first_section = !table_positions(&self.doc)
            .iter()
            .any(|(pos, path)| pos.is_some() && !path.is_empty());
        let mut prefix = "\n".to_owned();
        if first_section {
            let trailing = self.doc.trailing().as_str().unwrap_or("").to_owned();
            self.doc.set_trailing("");
            let root_is_empty = self.doc.as_table().is_empty() && trailing.trim().is_empty();
            prefix = match (root_is_empty, trailing.is_empty()) {
                (true, _) => String::new(),
                (false, true) => "\n".to_owned(),
                (false, false) => format!("{trailing}\n"),
            };
        }
        let users = self.users_item(true)?.expect("created");
        match users {
            Item::Table(users) => {
                let mut table = Table::new();
                for (key, value) in fields {
                    table.insert(key, Item::Value(value));
                }
                table.decor_mut().set_prefix(prefix);
                users.insert(name, Item::Table(table));
                place_after(&mut self.doc, name, after);
            }
            Item::Value(Value::InlineTable(users)) => {
                let mut table = toml_edit::InlineTable::new();
                for (key, value) in fields {
                    table.insert(key, value);
                }
                users.insert(name, Value::InlineTable(table));
            }
            _ => unreachable!("checked to be table-like"),
        }
        Ok(())
    }

    /// Removes the user's table. Comment lines directly above its header go with it; a comment
    /// block separated from the header by a blank line is kept (moved to what follows).
    pub fn remove_user(&mut self, name: &str) -> Result<(), Fail> {
        self.user_mut(name)?;
        let removed = self.doc["users"]
            .as_table_like_mut()
            .and_then(|t| t.remove(name))
            .expect("user exists");
        if let Item::Table(table) = removed {
            let prefix = table
                .decor()
                .prefix()
                .and_then(|p| p.as_str())
                .unwrap_or("")
                .to_owned();
            let kept = detached_comments(&prefix);
            if !kept.trim().is_empty() {
                keep_comments(&mut self.doc, table.position(), &kept);
            }
        }
        Ok(())
    }

    /// Checks the new text with the plugin's own validation and replaces the file atomically,
    /// keeping its owner and mode. Refuses if the file changed since it was read.
    pub fn save(self) -> Result<(), Fail> {
        let text = self.doc.to_string();
        Config::parse(&self.path, &text)
            .map_err(|e| format!("refusing to write a config the plugin would refuse: {e}"))?;
        let (now, _) = read_text(&self.real_path)?;
        if now != self.original {
            return Err(Fail(format!(
                "{} changed while motpctl was editing it; nothing was written, try again",
                self.path.display()
            )));
        }
        write_atomically(
            &self.real_path,
            text.as_bytes(),
            self.mode,
            Some((self.uid, self.gid)),
        )
        .map_err(|e| Fail(format!("cannot write {}: {e}", self.path.display())))
    }
}

/// Sets `key` to `value`, keeping the spacing and any comment after the old value.
pub fn set_value(table: &mut dyn TableLike, key: &str, mut value: Value) {
    match table.get_mut(key) {
        Some(Item::Value(old)) => {
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        Some(other) => *other = Item::Value(value),
        None => {
            table.insert(key, Item::Value(value));
        }
    }
}

/// Every standard table in document order: (position, dotted path). The entries of an array
/// of tables (`[[users.NAME.tokens]]`) are listed with their key's path too, so their
/// positions count; [`table_at_mut`] does not find them.
fn table_positions(doc: &DocumentMut) -> Vec<(Option<usize>, Vec<String>)> {
    fn walk(t: &Table, path: &mut Vec<String>, out: &mut Vec<(Option<usize>, Vec<String>)>) {
        out.push((t.position(), path.clone()));
        for (k, v) in t.iter() {
            match v {
                Item::Table(child) => {
                    path.push(k.to_owned());
                    walk(child, path, out);
                    path.pop();
                }
                Item::ArrayOfTables(entries) => {
                    path.push(k.to_owned());
                    for child in entries.iter() {
                        walk(child, path, out);
                    }
                    path.pop();
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(doc.as_table(), &mut Vec::new(), &mut out);
    out
}

fn table_at_mut<'a>(doc: &'a mut DocumentMut, path: &[String]) -> Option<&'a mut Table> {
    let mut t = doc.as_table_mut();
    for k in path {
        t = t.get_mut(k)?.as_table_mut()?;
    }
    Some(t)
}

/// The position of the last `[users]` or `[users.*]` section, or of the last table if there is
/// none.
fn last_user_position(doc: &DocumentMut) -> Option<usize> {
    let all = table_positions(doc);
    let users = all
        .iter()
        .filter(|(_, p)| p.first().map(String::as_str) == Some("users"))
        .filter_map(|(pos, _)| *pos)
        .max();
    users.or_else(|| all.iter().filter_map(|(pos, _)| *pos).max())
}

/// Gives the new user table the position right after `after`, shifting the tables behind it.
fn place_after(doc: &mut DocumentMut, name: &str, after: Option<usize>) {
    let new = after.map_or(0, |p| p + 1);
    shift_positions(doc.as_table_mut(), new);
    if let Some(t) = table_at_mut(doc, &["users".to_owned(), name.to_owned()]) {
        t.set_position(new);
    }
}

/// Moves every table at position `from` or later (arrays of tables included) one place on.
fn shift_positions(t: &mut Table, from: usize) {
    for (_, v) in t.iter_mut() {
        let children: Vec<&mut Table> = match v {
            Item::Table(child) => vec![child],
            Item::ArrayOfTables(entries) => entries.iter_mut().collect(),
            _ => continue,
        };
        for child in children {
            if let Some(pos) = child.position().filter(|&p| p >= from) {
                child.set_position(pos + 1);
            }
            shift_positions(child, from);
        }
    }
}

/// The part of a header's prefix that is separated from it by a blank line (comment lines
/// that hug the header belong to that table).
fn detached_comments(prefix: &str) -> String {
    let prefix = prefix.replace("\r\n", "\n");
    let body = prefix.trim_end_matches([' ', '\t', '\n']);
    match body.rfind("\n\n") {
        Some(i) => prefix[..i + 2].to_owned(),
        None => String::new(),
    }
}

/// Puts `comments` in front of the first table after `position`, or at the end of the file.
fn keep_comments(doc: &mut DocumentMut, position: Option<usize>, comments: &str) {
    let next = table_positions(doc)
        .into_iter()
        .filter_map(|(pos, path)| Some((pos?, path)))
        .filter(|(pos, path)| position.is_some_and(|p| *pos > p) && !path.is_empty())
        .min_by_key(|(pos, _)| *pos);
    if let Some((_, path)) = next {
        if let Some(t) = table_at_mut(doc, &path) {
            let old = t
                .decor()
                .prefix()
                .and_then(|p| p.as_str())
                .unwrap_or("")
                .to_owned();
            let old = if comments.ends_with("\n\n") {
                old.trim_start_matches('\n')
            } else {
                &old
            };
            t.decor_mut().set_prefix(format!("{comments}{old}"));
            return;
        }
    }
    let old = doc.trailing().as_str().unwrap_or("").to_owned();
    doc.set_trailing(format!("{comments}{old}"));
}

/// Writes `data` to `path` through a temporary file in the same directory: the file appears
/// complete or not at all. `owner` is kept when given (needs root if it is not ours).
pub fn write_atomically(
    path: &Path,
    data: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "motp.toml".to_owned());
    let (tmp_path, mut file) = create_temp(&dir, &base)?;
    let guard = RemoveOnDrop(Some(tmp_path.clone()));
    if let Some((uid, gid)) = owner {
        let meta = file.metadata()?;
        if meta.uid() != uid || meta.gid() != gid {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot keep the file's owner {uid}:{gid} ({e}); run motpctl as root \
                         or as the file's owner"
                    ),
                )
            })?;
        }
    }
    file.set_permissions(Permissions::from_mode(mode))?;
    file.write_all(data)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp_path, path)?;
    guard.disarm();
    File::open(&dir)?.sync_all()?;
    Ok(())
}

/// Creates a new file `.NAME.motpctl-PID-N.tmp` (mode 0600, never an existing file).
fn create_temp(dir: &Path, base: &str) -> std::io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    for n in 0..1000 {
        let candidate = dir.join(format!(".{base}.motpctl-{pid}-{n}.tmp"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&candidate)
        {
            Ok(f) => return Ok((candidate, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!("cannot create a temporary file in {}", dir.display()),
    ))
}

struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml_edit::value;

    const TEXT: &str = "\
# motp.toml for the office VPN
window_secs = 180 # three minutes

# --- users ---

# Alice's phone (Aegis)
[users.alice]
secret = \"0123456789abcdef\"
pin = \"1234\"

# Bob: laptop cert bob-laptop
[users.bob]
secret = \"fedcba9876543210\"
pin = \"4321\"
common_name = \"bob-laptop\"

[state]
backend = \"memory\"
# end of file
";

    fn doc() -> DocumentMut {
        TEXT.parse().unwrap()
    }

    #[test]
    fn new_user_goes_after_the_last_user() {
        let mut f = ConfigFile {
            real_path: "x".into(),
            path: "x".into(),
            original: TEXT.into(),
            mode: 0o600,
            uid: 0,
            gid: 0,
            doc: doc(),
        };
        f.add_user(
            "carol",
            vec![
                ("secret", "00112233445566778899aabbccddeeff".into()),
                ("pin", "9".into()),
            ],
        )
        .unwrap();
        let out = f.doc.to_string();
        let carol = out.find("[users.carol]").unwrap();
        assert!(carol > out.find("[users.bob]").unwrap(), "{out}");
        assert!(carol < out.find("[state]").unwrap(), "{out}");
        assert!(out.contains("window_secs = 180 # three minutes"), "{out}");
        assert!(out.contains("\n\n[users.carol]\nsecret"), "{out}");
        Config::parse(Path::new("x"), &out).unwrap();
    }

    #[test]
    fn removing_the_first_user_keeps_the_section_comment() {
        let mut f = ConfigFile {
            real_path: "x".into(),
            path: "x".into(),
            original: TEXT.into(),
            mode: 0o600,
            uid: 0,
            gid: 0,
            doc: doc(),
        };
        f.remove_user("alice").unwrap();
        let out = f.doc.to_string();
        assert!(!out.contains("alice"), "{out}");
        assert!(!out.contains("Aegis"), "{out}");
        assert!(out.contains("# --- users ---"), "{out}");
        assert!(out.contains("# Bob: laptop"), "{out}");
        f.remove_user("bob").unwrap();
        let out = f.doc.to_string();
        assert!(out.contains("# --- users ---"), "{out}");
        assert!(!out.contains("Bob"), "{out}");
        assert!(out.contains("# end of file"), "{out}");
    }

    #[test]
    fn set_value_keeps_a_trailing_comment() {
        let mut d: DocumentMut = "[users.a]\ndisabled = false # on leave\n".parse().unwrap();
        let t = d["users"]["a"].as_table_like_mut().unwrap();
        set_value(t, "disabled", true.into());
        assert_eq!(d.to_string(), "[users.a]\ndisabled = true # on leave\n");
        let _ = value(1);
    }

    #[test]
    fn detached_part_of_a_prefix() {
        assert_eq!(detached_comments("\n# a\n"), "");
        assert_eq!(detached_comments("\n# s\n\n# a\n"), "\n# s\n\n");
        assert_eq!(detached_comments("# sect\n\n# a\n"), "# sect\n\n");
        assert_eq!(detached_comments("\n"), "");
    }
}
