"""Profiling inside distributed engines: Spark (:mod:`mlmon.engines.spark`) and Ray (:mod:`mlmon.engines.ray`).

Profiles are a monoid, so an engine runs mlmon's pure profiling function
(:func:`~mlmon.profiles.frame.profile_windows`) on the Arrow batches of each of
its partitions, every worker emits its partial window profiles in the lake's
Arrow row form (:mod:`mlmon.engines.partials`), and the driver merges them per
window and writes them with the same :class:`~mlmon.lake.writer.LakeWriter` as
``mlmon profile``. Only the driver touches the lake. See docs/scale.md.

The engines are optional extras (``mlmon[spark]``, ``mlmon[ray]``); nothing in the
core (``mlmon.profiles``, ``mlmon.lake``, ``mlmon.analysis``) imports them.
"""
