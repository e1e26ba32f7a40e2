"""The commands: ``mbrl-bound`` (:mod:`.main`) and ``mbrl-bound-compare`` (:mod:`.compare`)."""
