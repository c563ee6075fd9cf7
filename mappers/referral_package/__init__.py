"""A step-down referral package, pure: its types and mapping (``mapping``), which resources it
is made of (``references``), a submitted Bundle checked and made canonical (``submission``),
a package given as domain values built into that Bundle (``builder``) and the case manager's
summary of it (``summary``). Reading from the server and storing are in
``integration.referrals``."""
