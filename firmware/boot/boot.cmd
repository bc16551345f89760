# routerkit A/B boot script for U-Boot (hush). Compiled to boot.scr by `routerkit firmware disk`
# (mkimage -T script); @NAME@ placeholders are filled from the board profile.
#
# state.env on the FAT (partition @BOOT_PART@) holds rk_active=A|B and rk_tries=N. Every boot
# attempt increments rk_tries BEFORE booting; the running system resets it to 0 ("mark good").
# After @MAX_TRIES@ unconfirmed attempts, or when bootm refuses the FIT (hash mismatch, bad
# header, configuration not signed by a key of the control DTB), we fall back to the other slot
# and persist the switch. U-Boot has no sha256sum here: bootm checks the FIT's sha256 hash nodes
# itself. Verified boot: kernel AND ramdisk are named by the configuration (#conf-1), so bootm
# checks conf-1's signature against the control DTB's required keys before using either; a
# ramdisk named by unit (addr:ramdisk-1) would be loaded without that check.
# Never saveenv: QEMU 7.2 pflash writes corrupt.
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
# Why bootm returned: `fdt checksign` checks the FIT's default configuration against the
# required keys of the control DTB, as bootm did (a FIT that is not even a tree is corrupt).
setenv rk_why 'setenv rk_reason "is corrupt"; if fdt addr ${rk_addr}; then fdt checksign || setenv rk_reason "has no valid signature from a trusted key"; echo; fi'
setenv rk_save 'env export -t ${rk_addr} rk_active rk_tries; fatwrite ${rk_fat} ${rk_addr} @STATE_FILE@ ${filesize}'
setenv rk_boot 'if test "${rk_active}" = "A"; then setenv rk_start @A_START@; setenv rk_count @A_COUNT@; else setenv rk_start @B_START@; setenv rk_count @B_COUNT@; fi; echo "routerkit: booting slot ${rk_active} (attempt ${rk_tries} of ${rk_max_tries})"; @IFACE@ read ${rk_addr} ${rk_start} ${rk_count}; setenv bootargs "console=@CONSOLE@ rk.slot=${rk_active}"; bootm ${rk_addr}#conf-1 ${rk_addr}#conf-1 ${fdtcontroladdr}'

if test ${rk_tries} -ge ${rk_max_tries}; then
	echo "routerkit: slot ${rk_active} failed ${rk_tries} times, falling back to slot ${rk_other}"
	run rk_swap
	setenv rk_tries 0
fi
setexpr rk_tries ${rk_tries} + 1
run rk_save
run rk_boot

# bootm only returns when it refused the image: the slot is corrupt or not signed by a trusted key.
run rk_why
echo "routerkit: slot ${rk_active} ${rk_reason}, falling back to slot ${rk_other}"
run rk_swap
setenv rk_tries 1
run rk_save
run rk_boot
run rk_why
echo "routerkit: slot ${rk_active} ${rk_reason} too; no bootable slot. Reflash over the serial console."
