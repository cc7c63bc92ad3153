#!/usr/bin/env bash
# make check-layers: the include rules that keep the layers apart.
#   loader/common/  knows no application: no loader/<app>/ header, no
#                   include/etcpipe/<app>.h ABI, no BPF skeleton, no gpu/.
#   loader/<app>/   uses common/, gpu/, include/ and itself, never another
#                   application (only loader/cli/ sees them all).
#   gpu/            uses loader/common/ at most, never application code.
#   bpf/include/    shared BPF parsing: no application ABI header.
# Prints every violation as FILE:LINE: rule, exits 1 if there is any.
set -uo pipefail
cd "$(dirname "$0")/.."

apps=()
for d in loader/*/; do
    d=${d%/}; d=${d#loader/}
    [[ $d == common || $d == cli ]] || apps+=("$d")
done
app_re=$(IFS='|'; echo "${apps[*]}")
abi_re='etcpipe/[a-z_]+\.h'
bad=0

# check FILES REGEX RULE: every quoted #include in FILES matching REGEX is a violation.
check() {
    local regex=$1 rule=$2; shift 2
    [[ $# -gt 0 ]] || return 0
    local hits
    hits=$(grep -nHE "^[[:space:]]*#[[:space:]]*include[[:space:]]*\"($regex)" "$@" 2>/dev/null) || return 0
    while IFS= read -r h; do
        echo "check-layers: ${h%%:#*}: $rule: ${h#*:*:}"
        bad=1
    done <<<"$hits"
}

mapfile -t common < <(find loader/common -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.def' \) | sort)
check "(($app_re|cli)/|gpu/|$abi_re|[^\"]*\.skel\.h)" "loader/common/ includes an application header" "${common[@]}"

for app in "${apps[@]}"; do
    mapfile -t files < <(find "loader/$app" -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' \) | sort)
    others=$(printf '%s\n' "${apps[@]}" cli | grep -vx "$app" | paste -sd'|')
    check "($others)/" "loader/$app/ includes another application" "${files[@]}"
done

mapfile -t gpu < <(find gpu -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.cu' -o -name '*.cuh' \) | sort)
check "(($app_re|cli)/|loader/)" "gpu/ includes loader application code" "${gpu[@]}"

mapfile -t bpfinc < <(find bpf/include -type f -name '*.h' | sort)
check "$abi_re" "bpf/include/ includes an application ABI header" "${bpfinc[@]}"

if [[ $bad -ne 0 ]]; then
    echo "check-layers: FAILED (rules: scripts/check-layers.sh)"
    exit 1
fi
echo "check-layers: ok (${#common[@]} common, ${#gpu[@]} gpu files; applications: ${apps[*]})"
