"""The numeric engine of ketameta (private).

Every model is fitted here on arrays with the studies on the last axis; the public modules
(``pooling``, ``metareg``, ``subgroups``, ``bayes``, ``binary``, ...) validate their input,
call the engine and wrap its output in frozen result objects. See ``DEVELOPERS.md`` for
where a new kind of model goes.
"""
