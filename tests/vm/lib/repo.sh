# shellcheck shell=bash
# Image and repository: the cached base image (built by tests/vm/image.sh) and
# the local APT repository disk the guests install from. Sourced by ../lib.sh.

# Directory of the cached base image for the current recipe (hash of image.sh).
vm_base_dir() {
    local key
    key=$(sha256sum "$VM_HERE/image.sh" | cut -c1-16)
    echo "$VM_CACHE/base-$key"
}

# vm_cache_keep TMP DIR: a cache entry built in TMP (beside DIR, in
# VM_CACHE) becomes DIR, named PREFIX-KEY: marked complete, renamed over any
# older DIR (an interrupted build is never mistaken for a cached one), and
# the other keys' PREFIX-* entries, dead weight, removed.
vm_cache_keep() {
    local tmp=$1 dir=$2
    touch "$tmp/complete"
    rm -rf "$dir"
    mv "$tmp" "$dir"
    find "$VM_CACHE" -maxdepth 1 -name "$(basename "${dir%-*}")-*" ! -path "$dir" -exec rm -rf {} +
}

# Build the base image unless a complete one for this recipe is cached.
vm_ensure_base() {
    local base tmp t0
    base=$(vm_base_dir)
    if [ -f "$base/complete" ]; then
        echo "[image] reusing cached base image $base" >&2
        return 0
    fi
    mkdir -p "$VM_CACHE"
    # Build next to the final place, then rename: an interrupted build is never
    # mistaken for a cached image.
    tmp=$(mktemp -d "$VM_CACHE/build.XXXXXX")
    t0=$SECONDS
    echo "[image] building base image (mmdebstrap bookworm + sysvinit, ~2 min)..." >&2
    if ! "$VM_HERE/image.sh" "$tmp" >"$VM_CACHE/image-build.log" 2>&1; then
        tail -n 30 "$VM_CACHE/image-build.log" >&2
        rm -rf "$tmp"
        echo "[image] base image build failed, log: $VM_CACHE/image-build.log" >&2
        return 1
    fi
    echo "$((SECONDS - t0))" >"$tmp/build-seconds"
    vm_cache_keep "$tmp" "$base"
    echo "[image] base image built in $((SECONDS - t0))s" >&2
    echo "image-build $((SECONDS - t0))s" >>"$VM_TARGET/timings.txt"
}

# Build target/vm/repo (suites wheezy, jessie, jessie-backports) and its disk image repo.img.
#   $1: our synnefo-upgrade-0.19 .deb (goes into wheezy)
vm_build_repo() {
    local deb=$1 repo=$VM_TARGET/repo base suite
    base=$(vm_base_dir)
    rm -rf "$repo" "$VM_TARGET/repo.img"
    mkdir -p "$repo/pool"
    "$VM_HERE/packages/build" "$repo/pool"
    cp "$deb" "$repo/pool/wheezy/"
    # jessie also carries systemd-sysv, dbus and their missing dependencies.
    cp "$base"/debs/*.deb "$repo/pool/jessie/"
    # jessie-backports exists (empty): prepare adds it on service nodes, derived
    # from the wheezy line, and APT must be able to read it.
    mkdir -p "$repo/pool/jessie-backports"
    for suite in wheezy jessie jessie-backports; do
        mkdir -p "$repo/dists/$suite/main/binary-amd64"
        (cd "$repo" && apt-ftparchive packages "pool/$suite") >"$repo/dists/$suite/main/binary-amd64/Packages"
        gzip -9kn "$repo/dists/$suite/main/binary-amd64/Packages"
        apt-ftparchive \
            -o "APT::FTPArchive::Release::Suite=$suite" \
            -o "APT::FTPArchive::Release::Codename=$suite" \
            -o APT::FTPArchive::Release::Components=main \
            -o APT::FTPArchive::Release::Architectures=amd64 \
            release "$repo/dists/$suite" >"$VM_TARGET/Release.tmp"
        mv "$VM_TARGET/Release.tmp" "$repo/dists/$suite/Release"
    done
    # Handed to the guest as a read-only second disk (no journal: mountable read-only
    # from a read-only device).
    mkfs.ext4 -q -F -O ^has_journal -L snf-repo -d "$repo" "$VM_TARGET/repo.img" 512M
}

# vm_guest_debs NAME PKG...: Debian packages for a guest, beyond the base image:
# PKG and exactly the dependencies the image lacks (bookworm, amd64), resolved
# against the image's own dpkg status, downloaded once and cached per image
# (the directory $VM_CACHE/NAME-KEY/debs). vm_install_guest_debs NAME installs them.
vm_guest_debs() {
    local name=$1 base key dir tmp opts
    shift
    base=$(vm_base_dir)
    key=${base##*/base-}
    dir=$VM_CACHE/$name-$key
    if [ -f "$dir/complete" ]; then
        step "$* debs for the guest: cached in $dir"
        return 0
    fi
    step "$* debs for the guest: resolving against the image's dpkg status, downloading"
    tmp=$(mktemp -d "$VM_CACHE/$name.XXXXXX")
    mkdir -p "$tmp/lists/partial" "$tmp/cache" "$tmp/archives/partial" "$tmp/parts" "$tmp/debs"
    debugfs -R 'cat /var/lib/dpkg/status' "$base/disk.raw" >"$tmp/status" 2>"$tmp/debugfs.log" ||
        fail "debugfs could not read the image's dpkg status ($tmp/debugfs.log)"
    grep -q '^Package: dpkg$' "$tmp/status" || fail "the image's dpkg status read by debugfs looks wrong ($tmp/status)"
    printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/%s main\n' \
        'debian bookworm' 'debian bookworm-updates' 'debian-security bookworm-security' >"$tmp/sources.list"
    # Only this directory's state: the host's own APT lists, sources and dpkg
    # database are neither read nor locked.
    opts=(-o "Dir::State::status=$tmp/status" -o "Dir::State::Lists=$tmp/lists"
        -o "Dir::Cache=$tmp/cache" -o "Dir::Cache::archives=$tmp/archives"
        -o "Dir::Etc::sourcelist=$tmp/sources.list" -o "Dir::Etc::sourceparts=$tmp/parts"
        -o Debug::NoLocking=1 -o APT::Sandbox::User=root
        -o APT::Architecture=amd64 -o APT::Architectures::=amd64)
    { apt-get "${opts[@]}" -q update &&
        apt-get "${opts[@]}" -q install --download-only --no-install-recommends -y "$@"; } \
        >"$tmp/apt.log" 2>&1 || fail "downloading $* for the guest failed ($tmp/apt.log)"
    mv "$tmp"/archives/*.deb "$tmp/debs/"
    vm_cache_keep "$tmp" "$dir"
}

# vm_install_guest_debs NAME: copy the debs of vm_guest_debs NAME into the guest
# and install them with apt-get (it orders the unpacks by Pre-Depends).
vm_install_guest_debs() {
    local dir
    dir=$VM_CACHE/$1-$(vm_base_dir | sed 's/.*base-//')/debs
    tar -C "$dir" -cf - . |
        vm_ssh "rm -rf /root/debs-$1 && mkdir /root/debs-$1 && tar -C /root/debs-$1 -xf -" ||
        fail "could not copy the $1 debs into the guest"
    evidence_files "/root/debs-$1.log"
    check "apt-get install of the $1 debs" \
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /root/debs-$1/*.deb >/root/debs-$1.log 2>&1; rc=\$?; tail -n 5 /root/debs-$1.log; exit \$rc"
}
