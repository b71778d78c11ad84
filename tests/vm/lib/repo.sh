# shellcheck shell=bash
# Image and repository: the cached base image (built by tests/vm/image.sh) and
# the local APT repository disk the guests install from. Sourced by ../lib.sh.

# Directory of the cached base image for the current recipe (hash of image.sh).
vm_base_dir() {
    local key
    key=$(sha256sum "$VM_HERE/image.sh" | cut -c1-16)
    echo "$VM_CACHE/base-$key"
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
    touch "$tmp/complete"
    rm -rf "$base"
    mv "$tmp" "$base"
    # Older recipes' images are dead weight.
    find "$VM_CACHE" -maxdepth 1 -name 'base-*' ! -path "$base" -exec rm -rf {} +
    echo "[image] base image built in $((SECONDS - t0))s" >&2
    echo "image-build $((SECONDS - t0))s" >>"$VM_TARGET/timings.txt"
}

# Build target/vm/repo (suites wheezy and jessie) and its disk image repo.img.
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
    for suite in wheezy jessie; do
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
