"""The rubric core's five clinical dimensions, one module each (Baichuan-M2's dimensions).

Each dimension module adds its items to a shared :class:`~.shared.CoreBuild` in a fixed order;
:func:`medverify.rubrics.core.build_core` calls them in turn. Keeping one dimension per module
lets a clinician review (and a developer change) what one dimension asks for without reading
the others; what more than one of them must read the same way is in :mod:`.shared`.
"""
