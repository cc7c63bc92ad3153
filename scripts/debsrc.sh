# Sourced by scripts/fetch-testdata.sh and scripts/fetch-extra-captures.sh:
# fetch the orig tarball of a Debian source package with a private apt state.
#
# The machines configure no deb-src, so we derive one from the Debian archive
# apt's own deb822 sources already name (or $DEBSRC_URI / $DEBSRC_SUITE when
# set) and run apt against a private state directory: the system's apt
# configuration is never touched.
#
#   debsrc_tag=NAME          prefix of every message
#   debsrc_setup WORK        derive the deb-src stanza, `apt-get update` into WORK
#   debsrc_fetch PKG VER ORIG SHA256
#                            download PKG's source (PKG=VER first, then PKG) into
#                            WORK/dl; fails unless ORIG arrived with SHA256.
# After debsrc_setup: $debsrc_uri, $debsrc_suite, "${apt_private[@]}".

debsrc_tag=${debsrc_tag:-debsrc}

debsrc_setup() {
    debsrc_work=$1
    mkdir -p "$debsrc_work/sources.list.d" "$debsrc_work/lists/partial" "$debsrc_work/dl"

    # Derive deb-src stanzas from the deb822 sources that name the Debian archive.
    debsrc_uri=${DEBSRC_URI:-}; debsrc_suite=${DEBSRC_SUITE:-}
    local f u
    if [ -z "$debsrc_uri" ]; then
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -f "$f" ] || continue
            u=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' "$f" | head -1)
            case "$u" in
                *debian.org/debian|*debian.org/debian/) debsrc_uri=$u
                    debsrc_suite=$(sed -n 's/^Suites:[[:space:]]*\([^[:space:]]*\).*/\1/p' "$f" | head -1)
                    break ;;
            esac
        done
    fi
    if [ -z "$debsrc_uri" ] && [ -f /etc/apt/sources.list ]; then
        read -r debsrc_uri debsrc_suite < <(awk '$1=="deb" && $2 ~ /debian\.org\/debian\/?$/ {print $2, $3; exit}' /etc/apt/sources.list) || true
    fi
    if [ -z "$debsrc_uri" ]; then
        echo "$debsrc_tag: no Debian archive found in apt's sources (/etc/apt/sources.list.d/*.sources)" >&2
        return 1
    fi
    debsrc_suite=${debsrc_suite:-bookworm}
    cat > "$debsrc_work/sources.list.d/debsrc.sources" <<SRC
Types: deb-src
URIs: $debsrc_uri
Suites: $debsrc_suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC

    apt_private=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$debsrc_work/sources.list.d"
                 -o "Dir::State::Lists=$debsrc_work/lists" -o Debug::NoLocking=1)
    echo "$debsrc_tag: deb-src $debsrc_uri $debsrc_suite (private apt state in $debsrc_work)"
    if ! apt-get -qq "${apt_private[@]}" update ||
       ! ls "$debsrc_work/lists/"*_Sources* >/dev/null 2>&1; then
        echo "$debsrc_tag: could not fetch the source index of $debsrc_uri $debsrc_suite (no network, or no such archive?)" >&2
        return 1
    fi
}

debsrc_fetch() {
    local pkg=$1 ver=$2 orig=$3 want=$4 got
    # apt fetches the orig tarball first; the debian tarball may then fail. That
    # is expected: we only need the orig tarball, verified by its sha256 below.
    (cd "$debsrc_work/dl" && apt-get -qq "${apt_private[@]}" source --download-only "$pkg=$ver" >/dev/null 2>&1) ||
    (cd "$debsrc_work/dl" && apt-get -qq "${apt_private[@]}" source --download-only "$pkg" >/dev/null 2>&1) || true
    if [ ! -f "$debsrc_work/dl/$orig" ]; then
        echo "$debsrc_tag: $orig did not arrive from $debsrc_uri" >&2
        return 1
    fi
    got=$(sha256sum "$debsrc_work/dl/$orig" | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
        echo "$debsrc_tag: $orig sha256 mismatch: got $got, want $want" >&2
        return 1
    fi
}
