from gdtools.bound_args import BoundArgs, kept_on


def test_bound_args_call_the_function_with_the_point_first():
    bound = BoundArgs(lambda x, a, b: (x, a, b), [1, 2])
    assert bound(0) == (0, 1, 2) and bound.args == (1, 2)


def test_kept_on_makes_once_and_keeps_on_the_function():
    def f():
        pass

    made = []
    make = lambda: made.append(1) or len(made)  # noqa: E731
    assert kept_on(f, "_thing", make) == 1
    assert kept_on(f, "_thing", make) == 1 and made == [1]
    assert kept_on(len, "_thing", make) == 2  # a builtin cannot hold it: made each time
    assert kept_on(len, "_thing", make) == 3


def test_bound_args_come_after_every_leading_argument():
    bound = BoundArgs(lambda a, b, c, d: (a, b, c, d), (3, 4))
    assert bound(1, 2) == (1, 2, 3, 4)
