"""The emulated VM (sys/vm): the kernel-named faces of csrc/vm.c and the
policy code ported to Python (swapcache, the pageout daemon's loop; its
scans are csrc/pageout.c, the swap pager's I/O csrc/bio.c)."""
