"""`stargan compare`: k(k-1)/2 pairwise CycleGANs against one StarGAN under an equal budget (application).

Stages, one module each: :mod:`.plan` (what to train), :mod:`.data`, :mod:`.classifier`, :mod:`.train`,
:mod:`.evaluate`, :mod:`.report`; :mod:`.run` runs them in order and :mod:`.cli` is the command."""
