//! Boot readiness under systemd: what would stop jessie's first boot before
//! the network is up, read before arming. `/etc/fstab` entries that systemd
//! 215 would wait on in vain (a device not present, without `nofail`), network
//! file systems it would mount as local ones (no `_netdev`, a type it does not
//! know as networked), and DKMS modules that would not be rebuilt for the new
//! kernel for want of its headers.
//!
//! Read-only. The parsers and the findings are pure; [`findings`] reads the
//! node and hands them what it read.

use crate::base::dpkg::Package;
use crate::base::finding::{Finding, Severity};
use crate::base::fsx::Root;

/// The file systems table.
pub const FSTAB: &str = "/etc/fstab";
/// Where DKMS keeps one directory per module.
pub const DKMS_DIR: &str = "/var/lib/dkms";

/// One entry of `/etc/fstab`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstabEntry {
    /// Line number (1-based).
    pub line: usize,
    /// The device (`UUID=…`, `/dev/sda1`, `server:/export`, a directory for bind mounts).
    pub spec: String,
    /// Where it is mounted (`none` or `swap` for swap).
    pub file: String,
    /// The file system type.
    pub vfstype: String,
    /// The mount options.
    pub options: Vec<String>,
}

impl FstabEntry {
    fn has(&self, option: &str) -> bool {
        self.options.iter().any(|o| o == option)
    }
}

/// Parses fstab(5): whitespace-separated fields, `#` comments, octal escapes
/// (`\040`) in the first two fields kept as written. Lines with fewer than
/// three fields are skipped; a missing options field means `defaults`.
pub fn parse_fstab(text: &str) -> Vec<FstabEntry> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.split('#').next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            let (spec, file, vfstype) = (fields.next()?, fields.next()?, fields.next()?);
            let options = fields
                .next()
                .unwrap_or("defaults")
                .split(',')
                .map(str::to_string)
                .collect();
            Some(FstabEntry {
                line: i + 1,
                spec: spec.to_string(),
                file: file.to_string(),
                vfstype: vfstype.to_string(),
                options,
            })
        })
        .collect()
}

/// Kernel and virtual file systems: nothing to find on a disk.
const VIRTUAL: &[&str] = &[
    "proc",
    "sysfs",
    "tmpfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "securityfs",
    "debugfs",
    "mqueue",
    "hugetlbfs",
    "pstore",
    "binfmt_misc",
    "configfs",
    "fusectl",
    "efivarfs",
    "rpc_pipefs",
    "nfsd",
    "usbfs",
    "ramfs",
    "autofs",
];

/// The types systemd 215 (jessie) itself treats as network file systems
/// (`fstype_is_network()`): ordered after the network without `_netdev`.
const SYSTEMD_NETWORK: &[&str] = &[
    "cifs",
    "smbfs",
    "sshfs",
    "ncpfs",
    "ncp",
    "nfs",
    "nfs4",
    "gfs",
    "gfs2",
    "glusterfs",
];

/// Network file systems that systemd 215 does not recognise by type: without
/// `_netdev` it mounts them with the local ones, before the network.
const OTHER_NETWORK: &[&str] = &[
    "ceph",
    "fuse.ceph",
    "fuse.glusterfs",
    "fuse.sshfs",
    "fuse.s3fs",
    "davfs",
    "fuse.davfs",
    "ocfs2",
    "lustre",
    "afs",
    "pvfs2",
    "9p",
    "smb3",
];

/// Where a tagged device appears once udev has seen it.
fn device_path(spec: &str) -> Option<String> {
    for (tag, dir) in [
        ("UUID=", "by-uuid"),
        ("LABEL=", "by-label"),
        ("PARTUUID=", "by-partuuid"),
        ("PARTLABEL=", "by-partlabel"),
    ] {
        if let Some(value) = spec.strip_prefix(tag) {
            let value = value.trim_matches('"');
            return Some(format!("/dev/disk/{dir}/{value}"));
        }
    }
    spec.starts_with("/dev/").then(|| spec.to_string())
}

/// The fstab findings; `exists` tells whether an absolute path exists on the node.
pub fn fstab_findings(entries: &[FstabEntry], exists: &dyn Fn(&str) -> bool) -> Vec<Finding> {
    let mut found = Vec::new();
    for e in entries {
        if e.has("noauto") || VIRTUAL.contains(&e.vfstype.as_str()) {
            continue;
        }
        let at = format!("{FSTAB}:{}", e.line);
        let network_known = SYSTEMD_NETWORK.contains(&e.vfstype.as_str());
        let network_other = OTHER_NETWORK.contains(&e.vfstype.as_str());
        if network_known || network_other {
            if e.has("_netdev") {
                continue;
            }
            let title = format!("{at}: the {} mount of {} has no _netdev", e.vfstype, e.file);
            let hint = format!(
                "add _netdev to the options of {at} (and nofail if the node must boot without it)"
            );
            if network_known || e.has("nofail") {
                found.push(Finding::new(
                    "fstab-netdev",
                    Severity::Low,
                    title,
                    format!("systemd orders {} mounts after the network by their type, but _netdev says so for every init and tool", e.vfstype),
                    hint,
                ));
            } else {
                found.push(Finding::inhibitor(
                    "fstab-network-unrecognised",
                    title,
                    format!("jessie's systemd does not know '{}' as a network file system: without _netdev it mounts it with the local ones, before the network, fails, and the boot stops in emergency mode with no network (the node is unreachable in the middle of the downtime)", e.vfstype),
                    hint,
                ));
            }
            continue;
        }
        if e.has("nofail") {
            continue;
        }
        let missing = if e.has("bind") || e.has("rbind") {
            (!exists(&e.spec)).then(|| format!("the bind source {} does not exist", e.spec))
        } else {
            device_path(&e.spec)
                .filter(|dev| !exists(dev))
                .map(|dev| format!("{dev} is not present"))
        };
        if let Some(missing) = missing {
            let what = if e.vfstype == "swap" {
                "swap".to_string()
            } else {
                format!("the mount of {}", e.file)
            };
            found.push(Finding::inhibitor(
                "fstab-device-missing",
                format!("{at}: {what} needs {}, which is not present", e.spec),
                format!("{missing}; under systemd a missing device without nofail stops the boot in emergency mode after 90 seconds, with no network (the node is unreachable in the middle of the downtime)"),
                format!("attach the device, or add nofail (or noauto) to {at}, or remove the line"),
            ));
        }
    }
    found
}

/// The DKMS findings: modules (`/var/lib/dkms/NAME`) are rebuilt for the new
/// kernel only when its headers are installed, which on jessie means the
/// headers metapackage of the kernel flavour (`linux-headers-amd64` beside
/// `linux-image-amd64`); a version-specific `linux-headers-3.2.0-4-amd64`
/// serves wheezy's kernel only.
pub fn dkms_findings(modules: &[String], packages: &[Package]) -> Vec<Finding> {
    if modules.is_empty() {
        return Vec::new();
    }
    let flavour = packages
        .iter()
        .filter(|p| p.is_present())
        .filter_map(|p| p.name.strip_prefix("linux-image-"))
        .find(|f| !f.contains('.')) // not a versioned 3.2.0-4-amd64
        .unwrap_or("amd64");
    let headers = format!("linux-headers-{flavour}");
    if packages.iter().any(|p| p.is_present() && p.name == headers) {
        return Vec::new();
    }
    vec![Finding::new(
        "dkms-headers",
        Severity::Medium,
        format!("DKMS module(s) {} will not be built for jessie's kernel", modules.join(", ")),
        format!("{headers} is not installed: without the new kernel's headers DKMS cannot rebuild the module(s) during the dist-upgrade, and after the reboot they are missing (blktap: Archipelago's VM disks do not attach)"),
        format!("install {headers} before arming, so that the dist-upgrade brings jessie's headers"),
    )
    .commands([format!("apt-get install {headers}")])]
}

/// The boot-readiness findings of the node under `root`.
pub fn findings(root: &Root, packages: &[Package]) -> Vec<Finding> {
    let mut found = Vec::new();
    if let Ok(Some(text)) = crate::base::fsx::read_text_opt(root, FSTAB) {
        // A root without /dev (an image, not a running node) has nothing to
        // check devices against: only bind sources and network mounts count.
        let devices_known = root.path("/dev").is_dir();
        let exists =
            |abs: &str| (!devices_known && abs.starts_with("/dev/")) || root.path(abs).exists();
        found.extend(fstab_findings(&parse_fstab(&text), &exists));
    }
    let mut modules: Vec<String> = std::fs::read_dir(root.path(DKMS_DIR))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| {
                    root.path(std::path::Path::new(DKMS_DIR).join(name))
                        .is_dir()
                })
                .collect()
        })
        .unwrap_or_default();
    modules.sort();
    found.extend(dkms_findings(&modules, packages));
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{arbitrary_texts, package};

    const FSTAB_TEXT: &str = "\
# /etc/fstab: static file system information.
proc            /proc           proc    defaults        0       0
UUID=1111-aaaa  /               ext4    errors=remount-ro 0     1
UUID=2222-bbbb  /srv/data       ext4    defaults        0       2
LABEL=backup    /backup         ext4    defaults,nofail 0       2
/dev/sdc1       /mnt/usb        vfat    noauto,user     0       0
/dev/sdb2       none            swap    sw              0       0
/srv/data/pithos /var/lib/pithos none   bind            0       0
nas:/export     /mnt/nfs        nfs     defaults        0       0
nas:/export2    /mnt/nfs2       nfs4    _netdev         0       0
gluster:/vol    /mnt/gluster    fuse.glusterfs defaults 0       0
mon1:/          /mnt/ceph       ceph    name=admin,nofail 0     0
tmpfs           /tmp            tmpfs   defaults
";

    fn ids(found: &[Finding]) -> Vec<(&str, bool, String)> {
        found
            .iter()
            .map(|f| (f.id, f.inhibitor, f.title.clone()))
            .collect()
    }

    #[test]
    fn fstab_fields_and_line_numbers() {
        let entries = parse_fstab(FSTAB_TEXT);
        assert_eq!(entries.len(), 12);
        assert_eq!(entries[0].line, 2);
        assert_eq!(entries[3].options, ["defaults", "nofail"]);
        assert_eq!(entries[11].options, ["defaults"]);
        assert!(parse_fstab("only two\n\n# x y z\n").is_empty());
    }

    #[test]
    fn missing_devices_and_network_mounts_reported_by_kind() {
        let present = ["/dev/disk/by-uuid/1111-aaaa"];
        let exists = |p: &str| present.contains(&p);
        let found = fstab_findings(&parse_fstab(FSTAB_TEXT), &exists);
        let got = ids(&found);
        let kinds: Vec<(&str, bool)> = got.iter().map(|(i, x, _)| (*i, *x)).collect();
        assert_eq!(
            kinds,
            [
                ("fstab-device-missing", true),       // UUID=2222-bbbb
                ("fstab-device-missing", true),       // swap on /dev/sdb2
                ("fstab-device-missing", true),       // bind source
                ("fstab-netdev", false),              // nfs, known to systemd
                ("fstab-network-unrecognised", true), // fuse.glusterfs
                ("fstab-netdev", false),              // ceph, but nofail
            ],
            "{got:#?}"
        );
        assert!(got[0].2.starts_with("/etc/fstab:4:"), "{}", got[0].2);
        assert!(got[1].2.contains("swap"), "{}", got[1].2);
        assert!(found[0]
            .summary
            .contains("/dev/disk/by-uuid/2222-bbbb is not present"));

        // Everything present: only the network findings remain.
        let all = |_: &str| true;
        let found = fstab_findings(&parse_fstab(FSTAB_TEXT), &all);
        assert!(found.iter().all(|f| f.id != "fstab-device-missing"));
        assert_eq!(found.len(), 3);
    }

    #[test]
    fn dkms_modules_need_the_flavour_headers_metapackage() {
        let blktap = vec!["blktap".to_string()];
        let wheezy_only = [
            package("linux-image-amd64"),
            package("linux-headers-3.2.0-4-amd64"),
        ];
        let found = dkms_findings(&blktap, &wheezy_only);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, "dkms-headers");
        assert!(found[0].title.contains("blktap"));
        assert_eq!(
            found[0].remediation.commands,
            ["apt-get install linux-headers-amd64"]
        );

        let with_meta = [package("linux-image-amd64"), package("linux-headers-amd64")];
        assert!(dkms_findings(&blktap, &with_meta).is_empty());
        assert!(dkms_findings(&[], &wheezy_only).is_empty());
        let i686 = [package("linux-image-686-pae")];
        assert_eq!(
            dkms_findings(&blktap, &i686)[0].remediation.commands,
            ["apt-get install linux-headers-686-pae"]
        );
    }

    #[test]
    fn fstab_parser_survives_arbitrary_input() {
        let alphabet = b" \t\n#,=UIDLABE/devnfs_netdevnofail\\040";
        for text in arbitrary_texts(alphabet, 0x2545_f491_4f6c_dd1d, 2000, 160) {
            let entries = parse_fstab(&text);
            let _ = fstab_findings(&entries, &|p: &str| p.len() % 2 == 0);
        }
    }
}
