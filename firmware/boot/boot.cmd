# routerkit A/B boot script for U-Boot (hush). Compiled to boot.scr by `routerkit firmware disk`
# (mkimage -T script); @NAME@ placeholders are filled from the board profile.
#
# state.env on the FAT (partition @BOOT_PART@) holds rk_active=A|B and rk_tries=N. Every boot
# attempt increments rk_tries BEFORE booting; the running system resets it to 0 ("mark good").
# After @MAX_TRIES@ unconfirmed attempts, or when bootm refuses the FIT (hash mismatch, bad
# header), we fall back to the other slot and persist the switch. U-Boot has no sha256sum here:
# bootm checks the FIT's sha256 hash nodes itself. Never saveenv: QEMU 7.2 pflash writes corrupt.
# Only rk_active and rk_tries are imported: state.env must not be able to change bootcmd & co.

setenv rk_addr @LOAD_ADDR@
setenv rk_fat "@IFACE@ @DEV@:@BOOT_PART@"
setenv rk_max_tries @MAX_TRIES@
setenv rk_active A
setenv rk_tries 0
if fatload ${rk_fat} ${rk_addr} @STATE_FILE@; then
	env import -t ${rk_addr} ${filesize} rk_active rk_tries
else
	echo "routerkit: no @STATE_FILE@, starting with slot A"
fi
if test "${rk_active}" = "B"; then
	setenv rk_other A
else
	setenv rk_active A
	setenv rk_other B
fi

setenv rk_swap 'setenv rk_tmp ${rk_active}; setenv rk_active ${rk_other}; setenv rk_other ${rk_tmp}'
setenv rk_save 'env export -t ${rk_addr} rk_active rk_tries; fatwrite ${rk_fat} ${rk_addr} @STATE_FILE@ ${filesize}'
setenv rk_boot 'if test "${rk_active}" = "A"; then setenv rk_start @A_START@; setenv rk_count @A_COUNT@; else setenv rk_start @B_START@; setenv rk_count @B_COUNT@; fi; echo "routerkit: booting slot ${rk_active} (attempt ${rk_tries} of ${rk_max_tries})"; @IFACE@ read ${rk_addr} ${rk_start} ${rk_count}; setenv bootargs "console=@CONSOLE@ rk.slot=${rk_active}"; bootm ${rk_addr}#conf-1 ${rk_addr}:ramdisk-1 ${fdtcontroladdr}'

if test ${rk_tries} -ge ${rk_max_tries}; then
	echo "routerkit: slot ${rk_active} failed ${rk_tries} times, falling back to slot ${rk_other}"
	run rk_swap
	setenv rk_tries 0
fi
setexpr rk_tries ${rk_tries} + 1
run rk_save
run rk_boot

# bootm only returns when it refused the image: the slot is corrupt.
echo "routerkit: slot ${rk_active} is corrupt, falling back to slot ${rk_other}"
run rk_swap
setenv rk_tries 1
run rk_save
run rk_boot
echo "routerkit: slot ${rk_active} is corrupt too; no bootable slot. Reflash over the serial console."
