# Shared helpers of the on-device scripts (busybox sh). Sourced, never run.
#
# Every device path comes from /etc/routerkit.conf (generated from the board profile at build
# time) and can be overridden by the environment, so the same scripts run on the HOST in tests
# against plain files: RK_DEV_A, RK_DEV_B, RK_BOOT_DIR, RK_CMDLINE, RK_BOARD, RK_VERSION_FILE.

[ -r "${RK_CONF:-/etc/routerkit.conf}" ] && . "${RK_CONF:-/etc/routerkit.conf}"
: "${RK_BOARD:=unknown}"
: "${RK_DEV_A:=/dev/vda2}"
: "${RK_DEV_B:=/dev/vda3}"
: "${RK_BOOT_DEV:=/dev/vda1}"
: "${RK_BOOT_DIR:=/boot}"
: "${RK_STATE_FILE:=state.env}"
: "${RK_CMDLINE:=/proc/cmdline}"
: "${RK_VERSION_FILE:=/etc/firmware-version}"
: "${RK_SETTINGS_DIR:=$RK_BOOT_DIR/settings}"
: "${RK_TRUSTED_KEYS:=/etc/routerkit/trusted-keys}"
: "${RK_SIGNIFY:=signify-openbsd}"

rk_die() {
	echo "${RK_PROG:-routerkit}: error: $*" >&2
	exit 1
}

rk_say() {
	echo "${RK_PROG:-routerkit}: $*"
}

# Decimal value of a zero-padded number ("000123" is octal to $((...)); expr is decimal).
rk_num() {
	case "$1" in
	'' | *[!0-9]*) return 1 ;;
	esac
	expr "$1" + 0
}

rk_slot_dev() {
	case "$1" in
	A) echo "$RK_DEV_A" ;;
	B) echo "$RK_DEV_B" ;;
	*) return 1 ;;
	esac
}

rk_other_slot() {
	if [ "$1" = B ]; then echo A; else echo B; fi
}

# Size in bytes of a block device, or of a regular file standing in for one (tests).
rk_dev_size() {
	if [ -b "$1" ]; then
		blockdev --getsize64 "$1"
	else
		stat -c %s "$1"
	fi
}

# Slot the running kernel was booted from (rk.slot= on the command line set by boot.scr).
rk_running_slot() {
	sed -n 's/.*\brk\.slot=\([AB]\).*/\1/p' "$RK_CMDLINE" 2>/dev/null | head -n 1
}

# Value of KEY in state.env. U-Boot's `env export -t` may leave a NUL at the end: drop it.
rk_state_get() {
	tr -d '\000' <"$RK_BOOT_DIR/$RK_STATE_FILE" 2>/dev/null | sed -n "s/^$1=//p" | tail -n 1
}

# Write state.env atomically (temp file + rename, both on the FAT): a power cut leaves either
# the old or the new file, never a half-written one that U-Boot would misread.
rk_state_write() {
	_active=$1
	_tries=$2
	_tmp="$RK_BOOT_DIR/$RK_STATE_FILE.new"
	printf 'rk_active=%s\nrk_tries=%s\n' "$_active" "$_tries" >"$_tmp" || return 1
	sync
	mv -f "$_tmp" "$RK_BOOT_DIR/$RK_STATE_FILE" || return 1
	sync
}

# Footer of an image (file or slot region already cut to length): sets rk_fit_size,
# rk_meta_size, rk_sig_size from the 33-byte "RKFW1 %012d %08d %04d\n" line.
rk_parse_footer() {
	set -- $1
	[ "$#" = 4 ] && [ "$1" = RKFW1 ] || return 1
	rk_fit_size=$(rk_num "$2") || return 1
	rk_meta_size=$(rk_num "$3") || return 1
	rk_sig_size=$(rk_num "$4") || return 1
}

# JSON helpers for the compact metadata object (one line): string and number fields.
rk_json_str() {
	printf '%s' "$1" | sed -n "s/.*\"$2\" *: *\"\([^\"]*\)\".*/\1/p"
}

rk_json_num() {
	printf '%s' "$1" | sed -n "s/.*\"$2\" *: *\([0-9][0-9]*\).*/\1/p"
}

# Does the metadata's supported_devices list contain $2?
rk_json_supports() {
	_list=$(printf '%s' "$1" | sed -n 's/.*"supported_devices" *: *\[\([^]]*\)\].*/\1/p')
	case ",$(printf '%s' "$_list" | tr -d ' ')," in
	*",\"$2\","*) return 0 ;;
	esac
	return 1
}

# sha256 of the first $2 bytes of $1. (busybox `head -c` reads in tiny pieces: 4x slower.)
rk_sha256_head() {
	dd if="$1" bs=65536 count="$2" iflag=count_bytes 2>/dev/null | sha256sum | cut -d' ' -f1
}

# Bytes $2..$2+$3 of $1.
rk_cut() {
	dd if="$1" bs=65536 skip="$2" count="$3" iflag=skip_bytes,count_bytes 2>/dev/null
}

# Write image $1 to the start of slot device $2 and flush it to the medium.
rk_write_slot() {
	dd if="$1" of="$2" bs=65536 conv=notrunc,fsync 2>/dev/null
}

# Check the image's signify/usign ed25519 signature over its metadata against the public keys
# this device trusts (shipped in the signed image that runs, so they change only through a
# signed image). $1 image, $2 a private temp dir; rk_parse_footer must have run. On success the
# verified metadata is in $2/meta.json and rk_signer names the key file; every later check
# reads that file, never the image again.
rk_verify_signature() {
	rk_cut "$1" "$rk_fit_size" "$rk_meta_size" >"$2/meta.json" || return 1
	rk_cut "$1" $((rk_fit_size + rk_meta_size)) "$rk_sig_size" >"$2/meta.json.sig" || return 1
	for _key in "$RK_TRUSTED_KEYS"/*.pub; do
		[ -f "$_key" ] || continue
		if "$RK_SIGNIFY" -V -q -p "$_key" -x "$2/meta.json.sig" -m "$2/meta.json" >/dev/null 2>&1; then
			rk_signer=$_key
			return 0
		fi
	done
	return 1
}
