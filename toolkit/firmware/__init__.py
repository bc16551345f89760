"""Firmware images: the v1 format, signing keys, verification, channels (TUF) and builds."""
