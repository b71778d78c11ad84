//! Which source is the Debian archive, and the jessie-backports source derived
//! from it. Read-only.
//!
//! A URI that merely contains `debian` says nothing: ceph's
//! `http://download.ceph.com/debian-hammer/` and nginx's
//! `http://nginx.org/packages/debian/` serve a `wheezy` suite too. What an
//! archive serves decides, surest first:
//! 1. APT's lists: the `Release`/`InRelease` file APT fetched for the URI and
//!    suite says `Origin: Debian` and `Label: Debian` (the security archive
//!    says `Debian-Security`, backports `Debian Backports`, ceph `Ceph`…);
//!    any other origin rules the source out, whatever its URI. A Release
//!    that names no origin at all (a local mirror published without one)
//!    says nothing: the layout decides.
//! 2. Without lists for it, the layout of a Debian mirror: only Debian's
//!    components (`main`, `contrib`, `non-free`), and a URI whose path ends in
//!    `/debian` (not `debian-hammer`, `debian-security`), on one of Debian's
//!    hosts (`deb.debian.org`, `ftp.*.debian.org`, `http.debian.net`…;
//!    never `security.debian.org`) before any other host.
//!
//! A disc (`cdrom:`) is never the mirror.

use anyhow::Result;
use std::collections::BTreeMap;

use super::sources::{self, Options, Source, DEB822_OPTIONS};
use crate::base::fsx::Root;
use crate::base::paths;

/// Debian's archive components.
const DEBIAN_COMPONENTS: &[&str] = &["main", "contrib", "non-free"];

/// The `Origin:` and `Label:` of a Release file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Release {
    /// `Origin:`.
    pub origin: Option<String>,
    /// `Label:`.
    pub label: Option<String>,
}

impl Release {
    /// The fields of a `Release` or (clear-signed) `InRelease` file.
    fn parse(text: &str) -> Release {
        let mut release = Release::default();
        for line in text.lines() {
            if line.starts_with("-----BEGIN PGP SIGNATURE") {
                break;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let slot = match key {
                "Origin" => &mut release.origin,
                "Label" => &mut release.label,
                _ => continue,
            };
            slot.get_or_insert_with(|| value.trim().to_string());
        }
        release
    }

    /// The Debian archive's own (not security, not backports).
    fn is_debian(&self) -> bool {
        self.origin.as_deref() == Some("Debian") && self.label.as_deref() == Some("Debian")
    }
}

/// What APT's lists say of the archives it fetched: the [`Release`] of every
/// `*_Release` and `*_InRelease` file in [`paths::APT_LISTS_DIR`], by the file's name
/// less that suffix (`ftp.gr.debian.org_debian_dists_wheezy_`).
#[derive(Debug, Clone, Default)]
pub struct Lists(BTreeMap<String, Release>);

impl Lists {
    /// Reads the node's lists; none when APT has fetched nothing (or the
    /// directory cannot be read: the layout rules then decide alone).
    pub fn read(root: &Root) -> Lists {
        let mut found = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(root.path(paths::APT_LISTS_DIR)) else {
            return Lists(found);
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name
                .strip_suffix("InRelease")
                .or_else(|| name.strip_suffix("Release"))
                .filter(|stem| stem.ends_with('_'))
            else {
                continue;
            };
            // The fields come first; the checksums after them run to megabytes.
            let path = std::path::Path::new(paths::APT_LISTS_DIR).join(&name);
            if let Ok(Some(head)) = crate::base::fsx::read_head(root, &path, 16 * 1024) {
                found
                    .entry(stem.to_string())
                    .or_insert_with(|| Release::parse(&String::from_utf8_lossy(&head)));
            }
        }
        Lists(found)
    }

    /// The Release of `suite` on `uri`, when APT fetched it.
    fn of(&self, uri: &str, suite: &str) -> Option<&Release> {
        let slash = if uri.ends_with('/') { "" } else { "/" };
        self.0
            .get(&list_name(&format!("{uri}{slash}dists/{suite}/")))
    }

    #[cfg(test)]
    fn with(files: &[(&str, &str)]) -> Lists {
        Lists(
            files
                .iter()
                .map(|(stem, text)| (stem.to_string(), Release::parse(text)))
                .collect(),
        )
    }
}

/// The name APT gives the list files of `uri` (its `URItoFileName`): no
/// scheme, user or password; quotes dropped; unsafe bytes as `%xx`; `/` as `_`.
fn list_name(uri: &str) -> String {
    const UNSAFE: &[u8] = b"\\|{}[]<>\"^~_=!@#$%&*";
    let uri = uri.replace('"', "");
    let rest = uri.split_once(':').map_or(uri.as_str(), |(_, rest)| rest);
    let (host, path) = match rest.strip_prefix("//") {
        Some(rest) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            (authority.rsplit('@').next().unwrap_or(authority), path)
        }
        None => ("", rest),
    };
    let mut name = String::new();
    for b in host.bytes().chain(path.bytes()) {
        if UNSAFE.contains(&b) || b <= 0x20 || b >= 0x7f {
            name.push_str(&format!("%{b:02x}"));
        } else if b == b'/' {
            name.push('_');
        } else {
            name.push(b as char);
        }
    }
    name
}

/// A URI's host (lower case, without user and port) and path.
fn host_and_path(uri: &str) -> (String, &str) {
    let rest = uri.split_once(':').map_or(uri, |(_, rest)| rest);
    let Some(rest) = rest.strip_prefix("//") else {
        return (String::new(), rest);
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = host.split(':').next().unwrap_or(host);
    (host.to_ascii_lowercase(), path)
}

/// How surely `uri` of `source` is the Debian archive (lower is surer), or
/// `None` when it is not (see the module's rules). `suites`: where else to
/// look in the lists (before and after prepare's rewrite of the suite).
fn archive_rank(source: &Source, uri: &str, lists: &Lists, suites: &[&str]) -> Option<u8> {
    if sources::is_disc(uri) {
        return None;
    }
    let listed = std::iter::once(source.suite.as_str())
        .chain(suites.iter().copied())
        .find_map(|suite| lists.of(uri, suite));
    // A Release that names its origin decides; one that names none (a local
    // mirror published by a tool that sets no Origin:) says nothing, and the
    // layout decides as without lists.
    if let Some(release) = listed.filter(|r| r.origin.is_some() || r.label.is_some()) {
        return release.is_debian().then_some(0);
    }
    let (host, path) = host_and_path(uri);
    let debian_components = !source.components.is_empty()
        && source
            .components
            .iter()
            .all(|c| DEBIAN_COMPONENTS.contains(&c.split('/').next().unwrap_or(c.as_str())));
    let debian_path = path.trim_end_matches('/').rsplit('/').next() == Some("debian");
    if !debian_components || !debian_path || host == "security.debian.org" {
        return None;
    }
    let debian_host =
        host == "debian.org" || host.ends_with(".debian.org") || host.ends_with(".debian.net");
    Some(if debian_host { 1 } else { 2 })
}

/// The node's main Debian source (see the module's rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// The archive's URI, as written.
    pub uri: String,
    /// Its options, in one-line form: `[arch=amd64 trusted=yes]`, or empty.
    pub options: String,
}

impl Mirror {
    /// The one-line source of `suite` on this mirror, with the same options.
    pub fn line(&self, suite: &str, components: &str) -> String {
        if self.options.is_empty() {
            format!("deb {} {suite} {components}", self.uri)
        } else {
            format!("deb {} {} {suite} {components}", self.options, self.uri)
        }
    }
}

/// The Debian archive among `sources`: a `deb` source of one of `suites`
/// itself (the release, not `-updates` or `/updates`), the surest by the
/// module's rules, the first in APT's order among equals. Fails when its
/// options cannot go on one line (a deb822 `Signed-By:` with the key inline).
pub fn debian_mirror(sources: &[Source], lists: &Lists, suites: &[&str]) -> Result<Option<Mirror>> {
    let mut best: Option<(u8, &Source, &String)> = None;
    for source in sources
        .iter()
        .filter(|s| s.serves_binaries() && suites.contains(&s.suite.as_str()))
    {
        for uri in &source.uris {
            let Some(rank) = archive_rank(source, uri, lists, suites) else {
                continue;
            };
            if best.is_none_or(|(surest, _, _)| rank < surest) {
                best = Some((rank, source, uri));
            }
        }
    }
    let Some((_, source, uri)) = best else {
        return Ok(None);
    };
    Ok(Some(Mirror {
        uri: uri.clone(),
        options: one_line_options(source, suites)?,
    }))
}

/// The options of `source` as a one-line block.
fn one_line_options(source: &Source, suites: &[&str]) -> Result<String> {
    let (stanza, fields) = match &source.options {
        Options::Line(block) => return Ok(block.clone()),
        Options::Stanza(stanza, fields) => (stanza, fields),
    };
    let mut options = Vec::new();
    for (key, value) in fields {
        if value.contains("-----BEGIN PGP") {
            anyhow::bail!(
                "{}:{stanza}: the Debian source's {key} holds a key inline, which a one-line source cannot carry: \
                 add the backports suite{} to this stanza's Suites: yourself (prepare then adds no line)",
                source.file.display(),
                suites
                    .first()
                    .map_or(String::new(), |from| format!(" ('{from}-backports')"))
            );
        }
        let Some((_, option)) = DEB822_OPTIONS.iter().find(|(k, _)| k == key) else {
            continue;
        };
        // A list may continue on the next lines; one-line options separate with commas.
        let value: Vec<&str> = value
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|v| !v.is_empty())
            .collect();
        options.push(format!("{option}={}", value.join(",")));
    }
    Ok(if options.is_empty() {
        String::new()
    } else {
        format!("[{}]", options.join(" "))
    })
}

/// What prepare does about `TO-backports` on a service node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backports {
    /// A `deb` source of `FROM-backports` (which prepare rewrites) or
    /// `TO-backports` is listed: nothing to add.
    Listed,
    /// No source of it, and this one to add (a comment line and the `deb`
    /// line on the Debian mirror, with its options).
    Add(String),
    /// No source of it, and no Debian archive to derive one from.
    NoMirror,
}

/// The backports decision for `sources` (before or after prepare's rewrite).
pub fn backports(sources: &[Source], lists: &Lists, from: &str, to: &str) -> Result<Backports> {
    let wanted = [format!("{from}-backports"), format!("{to}-backports")];
    if sources
        .iter()
        .any(|s| s.serves_binaries() && wanted.contains(&s.suite))
    {
        return Ok(Backports::Listed);
    }
    Ok(match debian_mirror(sources, lists, &[from, to])? {
        Some(mirror) => Backports::Add(format!(
            "# Added by 'synnefo-upgrade prepare': gevent and greenlet for Synnefo 0.19.\n{}\n",
            mirror.line(&format!("{to}-backports"), "main")
        )),
        None => Backports::NoMirror,
    })
}

/// What to do about [`Backports::NoMirror`] (the preflight's finding and
/// prepare's error say it).
pub fn add_backports_hint(to: &str) -> String {
    format!(
        "add the line yourself: 'deb MIRROR {to}-backports main' (MIRROR: the Debian mirror this node uses) \
         in a file of /etc/apt/sources.list.d/; prepare then adds none"
    )
}

/// [`backports`] for the node under `root`, as its files are now.
pub fn backports_source(root: &Root, from: &str, to: &str) -> Result<Backports> {
    backports(&sources::sources(root)?, &Lists::read(root), from, to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn list(text: &str) -> Vec<Source> {
        sources::parse(text, false, Path::new("/etc/apt/sources.list"))
    }

    fn mirror(text: &str, lists: &Lists) -> Option<String> {
        debian_mirror(&list(text), lists, &["wheezy", "jessie"])
            .unwrap()
            .map(|m| m.uri)
    }

    const DEBIAN_RELEASE: &str = "Origin: Debian\nLabel: Debian\nSuite: oldstable\nCodename: wheezy\nMD5Sum:\n 0123 12 main/binary-amd64/Packages\n";

    #[test]
    fn list_names_are_apts() {
        assert_eq!(
            list_name("http://ftp.gr.debian.org/debian/dists/wheezy/"),
            "ftp.gr.debian.org_debian_dists_wheezy_"
        );
        assert_eq!(
            list_name("http://user:secret@mirror:8080/my_debian~/dists/wheezy/updates/"),
            "mirror:8080_my%5fdebian%7e_dists_wheezy_updates_"
        );
        assert_eq!(
            list_name("file:///srv/mirror/debian/dists/wheezy/"),
            "_srv_mirror_debian_dists_wheezy_"
        );
    }

    #[test]
    fn release_fields_of_a_clear_signed_inrelease() {
        let text = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: Debian\nLabel: Debian-Security\nSuite: oldstable\n-----BEGIN PGP SIGNATURE-----\nOrigin: forged\n";
        assert_eq!(
            Release::parse(text),
            Release {
                origin: Some("Debian".into()),
                label: Some("Debian-Security".into())
            }
        );
    }

    #[test]
    fn other_repositories_naming_debian_are_not_the_mirror() {
        let others = "\
deb http://download.ceph.com/debian-hammer/ wheezy main
deb http://nginx.org/packages/debian/ wheezy nginx
deb http://security.debian.org/ wheezy/updates main
deb http://deb.debian.org/debian-security wheezy/updates main
deb http://ftp.gr.debian.org/debian/ wheezy-updates main
deb-src http://ftp.gr.debian.org/debian/ wheezy main
deb cdrom:[Debian GNU/Linux 7 _Wheezy_ - Official amd64 DVD Binary-1]/ wheezy main contrib
deb http://apt.dev.grnet.gr wheezy/
";
        assert_eq!(mirror(others, &Lists::default()), None);
        for main in [
            "deb http://ftp.gr.debian.org/debian/ wheezy main contrib non-free",
            "deb http://httpredir.debian.org/debian wheezy main",
            "deb [arch=amd64] http://http.debian.net/debian wheezy main/debian-installer",
            "deb http://mirror.example.org/pub/linux/debian/ wheezy main",
            "deb ftp://archive.debian.org/debian jessie contrib",
        ] {
            let uri = list(main)[0].uris[0].clone();
            assert_eq!(
                mirror(&format!("{others}{main}\n"), &Lists::default()),
                Some(uri),
                "{main}"
            );
        }
    }

    #[test]
    fn a_debian_host_before_a_site_mirror_and_the_lists_before_both() {
        let text = "\
deb http://repo.zabbix.com/zabbix/2.4/debian wheezy main
deb http://ftp.gr.debian.org/debian wheezy main
deb http://mirror.site/pub/os wheezy main
";
        assert_eq!(
            mirror(text, &Lists::default()).as_deref(),
            Some("http://ftp.gr.debian.org/debian")
        );
        // Zabbix alone: its layout is a mirror's, nothing else says otherwise.
        assert_eq!(
            mirror(&text[..text.find('\n').unwrap() + 1], &Lists::default()).as_deref(),
            Some("http://repo.zabbix.com/zabbix/2.4/debian")
        );
        // The lists know better: the site's mirror is Debian's, zabbix is not,
        // and Debian's host serves something else here.
        let lists = Lists::with(&[
            (
                "repo.zabbix.com_zabbix_2.4_debian_dists_wheezy_",
                "Origin: Zabbix\nLabel: Zabbix\n",
            ),
            ("mirror.site_pub_os_dists_wheezy_", DEBIAN_RELEASE),
            (
                "ftp.gr.debian.org_debian_dists_wheezy_",
                "Origin: Debian\nLabel: Debian Backports\n",
            ),
        ]);
        assert_eq!(
            mirror(text, &lists).as_deref(),
            Some("http://mirror.site/pub/os")
        );
        // After prepare's rewrite to jessie, the wheezy lists still decide.
        assert_eq!(
            mirror(&text.replace("wheezy", "jessie"), &lists).as_deref(),
            Some("http://mirror.site/pub/os")
        );
    }

    #[test]
    fn lists_that_name_no_origin_leave_it_to_the_layout() {
        let text = "\
deb http://download.ceph.com/debian-hammer/ wheezy main
deb [trusted=yes] file:/srv/mirror/debian wheezy main
";
        // A local mirror published without Origin:/Label:, as apt-ftparchive does by default.
        let lists = Lists::with(&[
            (
                "download.ceph.com_debian-hammer_dists_wheezy_",
                "Suite: wheezy\nCodename: wheezy\n",
            ),
            (
                "_srv_mirror_debian_dists_wheezy_",
                "Suite: wheezy\nCodename: wheezy\nComponents: main\n",
            ),
        ]);
        assert_eq!(
            mirror(text, &lists).as_deref(),
            Some("file:/srv/mirror/debian")
        );
        // One that names another origin still rules the source out.
        let lists = Lists::with(&[(
            "_srv_mirror_debian_dists_wheezy_",
            "Origin: Example\nLabel: Example\n",
        )]);
        assert_eq!(mirror(text, &lists), None);
    }

    #[test]
    fn a_disc_is_never_the_mirror_even_when_the_lists_call_it_debian() {
        let text = "deb cdrom:[Debian GNU/Linux 7 _Wheezy_]/ wheezy main\n";
        // apt-cdrom's lists of the disc say Debian: they are the disc's.
        let stem = list_name("cdrom:[Debian GNU/Linux 7 _Wheezy_]/dists/wheezy/");
        let lists = Lists::with(&[(stem.as_str(), DEBIAN_RELEASE)]);
        assert_eq!(mirror(text, &lists), None);
        let backports = backports(&list(text), &lists, "wheezy", "jessie").unwrap();
        assert_eq!(backports, Backports::NoMirror);
    }

    #[test]
    fn backports_listed_only_by_a_binary_source() {
        let main = "deb http://ftp.gr.debian.org/debian wheezy main\n";
        let add = |extra: &str| {
            backports(
                &list(&format!("{main}{extra}")),
                &Lists::default(),
                "wheezy",
                "jessie",
            )
            .unwrap()
        };
        assert_eq!(
            add("deb http://ftp.gr.debian.org/debian wheezy-backports main\n"),
            Backports::Listed
        );
        assert_eq!(
            add("deb http://ftp.gr.debian.org/debian jessie-backports main\n"),
            Backports::Listed
        );
        assert_eq!(
            add("deb-src http://ftp.gr.debian.org/debian wheezy-backports main\n"),
            Backports::Add("# Added by 'synnefo-upgrade prepare': gevent and greenlet for Synnefo 0.19.\ndeb http://ftp.gr.debian.org/debian jessie-backports main\n".into())
        );
    }
}
