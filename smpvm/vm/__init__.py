"""The emulated VM (sys/vm): the kernel-named faces of csrc/vm.c and the
policy code ported to Python (pageout, the swap pager's I/O, swapcache)."""
