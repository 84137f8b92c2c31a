"""A grammar of small, complete legacy Flax programs (issue 16).

``generate(seed)`` returns one :class:`Program`: a ``flax.nn`` file with one
to three user modules (the last is the model) and a ``main()`` that
initialises it (``init``/``init_by_shape``, through ``.partial`` or not,
inside ``nn.stateful``/``nn.stochastic`` when it needs them), wraps it in an
``nn.Model`` and trains it with a ``flax.optim`` optimizer, printing the
losses. Everything is drawn from one ``random.Random(seed)``: the same seed
gives the same program.

What varies, so that the rules cannot lean on spelling: names (classes,
hyper-parameters, locals), argument order, positional or keyword style,
defaults of every kind (numbers, tuples, lists, dicts, dtypes, callables,
``None``, booleans, required), and which constructs appear. Each construct
drawn is counted in ``Program.constructs`` (the README's table comes from
these counts over a recorded run).

The program prints the same numbers on both sides only when nothing depends
on how legacy and Linen derive random keys: every weight from ``np_init``
(numpy), no dropout, no ``nn.make_rng``; ``Program.deterministic`` says so.
Module mode (weights carried over, draws paired) checks the rest.
"""
from __future__ import annotations

import ast
import random
from collections import Counter
from dataclasses import dataclass, field

BATCH = 8
OPTIMIZERS = ("GradientDescent", "Momentum", "Adam", "Adagrad", "RMSProp", "LAMB", "LARS",
              "Adafactor", "Adadelta", "AdaBelief")

_CLASS_NAMES = ("Net", "Model", "Encoder", "Block", "Tower", "Head", "MLP", "Trunk", "Stem", "Layer",
                "Critic", "Body", "Mixer", "Cell", "Unit")
_WIDTH_NAMES = ("features", "hidden", "width", "num_hidden", "dim", "units", "n_hidden", "size", "latent")
_OUT_NAMES = ("num_outputs", "out_features", "n_out", "out_dim", "num_classes")


@dataclass
class Param:
    """A hyper-parameter of a module's ``apply``."""
    name: str
    default: str | None      # source text; None: required (the caller passes it)
    value: str               # what the caller passes for a required one (source text)


@dataclass
class ModuleSpec:
    name: str
    kind_in: str                      # 'vec' (B, D), 'img' (B, H, W, C) or 'tok' (B, T) int32
    out: int                          # width of the output (B, out)
    params: list[Param] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    train: bool = False               # has a ``train`` flag
    stateful: bool = False            # BatchNorm or self.state: needs nn.stateful
    stochastic: bool = False          # dropout or nn.make_rng: needs nn.stochastic
    own_state: bool = False           # self.state (legacy fails on it outside nn.stateful)
    deterministic: bool = True        # every weight from np_init
    method: str = ""                  # an @nn.module_method on a shared tail (the model only)
    method_width: int = 0             # the width its input must have
    method_source: str = ""
    flag: str = ""                    # a flag the program passes per call (the model only)


@dataclass
class Program:
    seed: int
    source: str
    top: str                          # the model class
    inputs: list                      # [((shape), dtype)] of one batch
    kwargs: dict                      # the .partial keywords of the model (module mode passes them)
    deterministic: bool
    optimizer_func: str | None = None  # the function building the optimizer (module mode calls it)
    constructs: Counter = field(default_factory=Counter)
    files: dict = field(default_factory=dict)  # other files of the program, by name
    replay: bool = True               # module mode replays two optimizer steps


class _Gen:
    def __init__(self, seed: int):
        self.r = random.Random(seed)
        # later additions draw from a stream of their own: what every seed drew before stays
        self.own = random.Random(seed * 7919 + 2)
        self.seed = seed
        self.constructs: Counter = Counter()
        self.init_seed = 0
        self.used_names: set[str] = set()
        self.functions: list[str] = []       # module-level functions the usage needs
        self.optimizer_func: str | None = None
        self.adaptive = False                # an optimizer other than GradientDescent/Momentum
        self.replay = True                   # module mode can replay the optimizer's steps

    # ---- helpers -------------------------------------------------------------------
    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def note(self, construct: str) -> None:
        self.constructs[construct] += 1

    def fresh(self, pool: tuple[str, ...]) -> str:
        for _ in range(20):
            name = self.r.choice(pool)
            if self.chance(0.3):
                name += self.r.choice(("_a", "2", "_x", "_size", "_0"))
            if name not in self.used_names:
                self.used_names.add(name)
                return name
        name = f"{self.r.choice(pool)}_{len(self.used_names)}"
        self.used_names.add(name)
        return name

    def kinit(self, spec: ModuleSpec, arg: str = "kernel_init") -> str:
        """``, kernel_init=np_init(k)`` (deterministic) or nothing (the default initializer)."""
        if self.chance(0.85):
            self.init_seed += 1
            return f", {arg}=np_init({self.init_seed})"
        spec.deterministic = False
        self.note("default initializer")
        return ""

    def hparam(self, spec: ModuleSpec, pool: tuple[str, ...], default: str, kind: str,
               may_require: bool = True) -> str:
        """A new hyper-parameter whose value is ``default``; returns its name."""
        name = self.fresh(pool)
        if may_require and self.chance(0.25):
            spec.params.append(Param(name, None, default))
            self.note("hyper-parameter: required")
        else:
            spec.params.append(Param(name, default, default))
            self.note(f"default: {kind}")
        return name

    def width(self, spec: ModuleSpec, literal_p: float = 0.5) -> str:
        w = str(self.r.choice((3, 4, 5, 6, 8)))
        if self.chance(literal_p):
            return w
        return self.hparam(spec, _WIDTH_NAMES, w, "int")

    # ---- statements on x: (B, D) ------------------------------------------------------
    def dense(self, spec: ModuleSpec, features: str) -> str:
        self.note("Dense")
        extra = self.kinit(spec)
        if self.chance(0.2):
            self.note("Dense bias=")
            extra += f", bias={self.r.choice(('False', 'True'))}"
        if self.chance(0.2):
            extra += f", name='{self.fresh(('proj', 'fc', 'dense', 'linear', 'out'))}'"
            self.note("name=")
        if self.chance(0.5):
            return f"x = nn.Dense(x, {features}{extra})"
        self.note("keyword features=")
        return f"x = nn.Dense(x, features={features}{extra})"

    def vec_statement(self, spec: ModuleSpec, subs: list[ModuleSpec]) -> list[str]:
        r = self.r
        choices = ["dense", "act", "layernorm", "batchnorm", "dropout", "partial", "shared", "helper",
                   "param", "state", "make_rng", "residual", "callable", "list_default", "dict_default",
                   "none_default", "dtype_default", "float_default", "bool_default", "tuple_default"]
        if subs:
            choices += ["submodule"] * 3
        kind = r.choice(choices)
        if kind == "dense":
            return [self.dense(spec, self.width(spec))]
        if kind == "act":
            self.note("activation")
            return [f"x = {r.choice(('nn.relu', 'nn.tanh', 'jnp.tanh', 'nn.gelu', 'nn.sigmoid', 'nn.swish'))}(x)"]
        if kind == "layernorm":
            self.note("LayerNorm")
            extra = r.choice(("", ", epsilon=1e-5", ", bias=False", ", scale=False"))
            return [f"x = nn.LayerNorm(x{extra})"]
        if kind == "batchnorm":
            self.note("BatchNorm")
            spec.train = spec.stateful = True
            mom = r.choice(("0.9", "0.8", "0.99"))
            if self.chance(0.3):
                name = self.hparam(spec, ("momentum", "bn_momentum", "decay"), mom, "float", may_require=False)
                mom = name
            return [f"x = nn.BatchNorm(x, use_running_average=not train, momentum={mom})"]
        if kind == "dropout":
            self.note("dropout")
            spec.train = spec.stochastic = True
            spec.deterministic = False
            rate = r.choice(("0.1", "0.25", "0.5"))
            if self.chance(0.5):
                return [f"x = nn.dropout(x, {rate}, deterministic=not train)"]
            return [f"x = nn.dropout(x, rate={rate}, deterministic=not train)"]
        if kind == "partial":
            self.note(".partial (built-in)")
            var = self.fresh(("dense", "layer", "proj", "make_dense", "fc"))
            f = self.width(spec)
            return [f"{var} = nn.Dense.partial(features={f}{self.kinit(spec)})",
                    f"x = {var}(x)", f"x = nn.relu(x)", f"x = {var}(x)"]
        if kind == "shared":
            self.note(".shared (built-in)")
            var = self.fresh(("tied", "shared", "twice", "same"))
            w = str(r.choice((4, 6)))
            return [f"x = nn.Dense(x, {w}{self.kinit(spec)})",
                    f"{var} = nn.Dense.shared(features={w}{self.kinit(spec)}, name='{var}')",
                    f"x = {var}(nn.relu(x))", f"x = {var}(nn.relu(x))"]
        if kind == "helper":
            self.note("helper method")
            meth = self.fresh(("_block", "_layer", "_mlp", "_stage", "_project"))
            arg = self.fresh(("n", "width_", "k", "size_"))
            w = self.width(spec)
            spec.methods.append(
                f"    def {meth}(self, x, {arg}):\n"
                f"        x = nn.Dense(x, {arg}{self.kinit(spec)})\n"
                f"        return nn.relu(x)\n")
            return [f"x = self.{meth}(x, {w})"]
        if kind == "param":
            self.note("self.param")
            self.init_seed += 1
            var = self.fresh(("scale", "gain", "alpha", "w"))
            return [f"{var} = self.param('{var}', (x.shape[-1],), np_init({self.init_seed}))",
                    f"x = x * {var}"]
        if kind == "state":
            self.note("self.state")
            spec.train = spec.stateful = spec.own_state = True
            var = self.fresh(("ema", "running", "avg", "stat"))
            return [f"{var} = self.state('{var}', (x.shape[-1],), nn.initializers.zeros)",
                    f"if train and not self.is_initializing():",
                    f"    {var}.value = 0.9 * {var}.value + 0.1 * jnp.mean(x, axis=0)",
                    f"x = x - {var}.value"]
        if kind == "make_rng":
            self.note("nn.make_rng")
            spec.train = spec.stochastic = True
            spec.deterministic = False
            return ["if train:",
                    "    x = x + 0.1 * jax.random.normal(nn.make_rng(), x.shape)"]
        if kind == "residual":
            self.note("residual")
            return [f"x = x + nn.Dense(x, x.shape[-1]{self.kinit(spec)})"]
        if kind == "callable":
            name = self.hparam(spec, ("act", "activation", "nonlin", "fn"),
                               r.choice(("nn.relu", "nn.tanh", "jnp.tanh", "nn.elu")), "callable",
                               may_require=False)
            return [f"x = {name}(x)"]
        if kind == "list_default":
            name = self.hparam(spec, ("widths", "layers", "sizes", "channels"),
                               r.choice(("[4, 3]", "[5]", "[6, 4, 3]")), "list", may_require=False)
            return [f"for w in {name}:", f"    x = nn.relu(nn.Dense(x, w{self.kinit(spec)}))"]
        if kind == "tuple_default":
            name = self.hparam(spec, ("dims", "hidden_sizes", "stages"),
                               r.choice(("(4, 3)", "(5,)", "(6, 4)")), "tuple", may_require=False)
            return [f"for i, w in enumerate({name}):",
                    # named after the hyper-parameter: two such loops in one module must not
                    # both make 'layer_0' (legacy: "A module with named ... already exists")
                    f"    x = nn.Dense(x, w{self.kinit(spec)}, name='{name}_%d' % i)"]
        if kind == "dict_default":
            name = self.hparam(spec, ("cfg", "config", "opts"),
                               r.choice(("{'hidden': 5, 'scale': 0.5}", "{'scale': 2.0, 'hidden': 3}")),
                               "dict", may_require=False)
            return [f"x = nn.Dense(x, {name}['hidden']{self.kinit(spec)}) * {name}['scale']"]
        if kind == "none_default":
            name = self.hparam(spec, ("proj_dim", "bottleneck", "extra"), "None", "None", may_require=False)
            return [f"if {name} is not None:", f"    x = nn.Dense(x, {name}{self.kinit(spec)})"]
        if kind == "dtype_default":
            name = self.hparam(spec, ("dtype", "compute_dtype", "param_dtype"), "jnp.float32", "dtype",
                               may_require=False)
            return [f"x = nn.Dense(x, {self.width(spec)}, dtype={name}{self.kinit(spec)})"]
        if kind == "float_default":
            name = self.hparam(spec, ("scale", "temperature", "gain", "factor"),
                               r.choice(("0.5", "2.0", "1e-1")), "float")
            return [f"x = x * {name}"]
        if kind == "bool_default":
            name = self.hparam(spec, ("use_bias", "bias", "with_bias"), r.choice(("True", "False")), "bool",
                               may_require=False)
            return [f"x = nn.Dense(x, {self.width(spec)}, bias={name}{self.kinit(spec)})"]
        if kind == "submodule":
            return self.submodule_call(spec, r.choice(subs))
        raise AssertionError(kind)

    def call_args(self, sub: ModuleSpec) -> list[str]:
        """The arguments after x for a call of ``sub``: required ones (positionally or
        by keyword), some defaults overridden."""
        args: list[str] = []
        positional_ok = True
        for p in sub.params:
            if p.default is None:
                if positional_ok and self.chance(0.5):
                    args.append(p.value)
                    self.note("positional argument")
                else:
                    positional_ok = False
                    args.append(f"{p.name}={p.value}")
                    self.note("keyword argument")
            else:
                positional_ok = False
        return args

    def submodule_call(self, spec: ModuleSpec, sub: ModuleSpec) -> list[str]:
        spec.train |= sub.train
        spec.stateful |= sub.stateful
        spec.own_state |= sub.own_state
        spec.stochastic |= sub.stochastic
        spec.deterministic &= sub.deterministic
        args = self.call_args(sub)
        style = self.r.choice(("call", "call", "partial", "shared", "name"))
        self.note(f"user module: {style}")
        call_args = ""
        if sub.train:
            # a flag fixed by .shared is no constructor attribute in Linen (the tool says so):
            # mostly it is passed where the shared module is called
            if style == "shared" and self.chance(0.7):
                call_args = ", train=train"
            else:
                args.append("train=train")
            self.note("train flag passed on")
        if style == "partial" and self.own.random() < 0.3:
            self.note("user module: partial called at once")
            return [f"x = {sub.name}.partial({', '.join(args)})(x)"]
        if style == "partial":
            var = self.fresh(("block", "sub", "make_block", "unit"))
            return [f"{var} = {sub.name}.partial({', '.join(args)})", f"x = {var}(x)"]
        if style == "shared":
            var = self.fresh(("block", "sub", "unit"))
            return [f"{var} = {sub.name}.shared({', '.join(args + [f'name={var!r}'])})", f"x = {var}(x{call_args})"]
        if style == "name":
            args.append(f"name='{self.fresh(('first', 'second', 'inner', 'trunk'))}'")
        return [f"x = {sub.name}({', '.join(['x'] + args)})"]

    # ---- a module ---------------------------------------------------------------------
    def module(self, kind_in: str, subs: list[ModuleSpec], top: bool) -> ModuleSpec:
        r = self.r
        spec = ModuleSpec(self.fresh(_CLASS_NAMES), kind_in, out=r.choice((2, 3, 4)))
        if kind_in == "img":
            self.note("Conv")
            f = self.width(spec)
            if self.chance(0.3):
                k = self.hparam(spec, ("kernel_size", "kernel", "window"), "(3, 3)", "tuple", may_require=False)
            else:
                k = "(3, 3)"
            pad = r.choice(("", ", padding='SAME'", ", padding='VALID'", ", strides=(2, 2)"))
            spec.body.append(f"x = nn.Conv(x, {f}, {k}{pad}{self.kinit(spec)})"
                             if self.chance(0.5) else
                             f"x = nn.Conv(x, features={f}, kernel_size={k}{pad}{self.kinit(spec)})")
            spec.body += self.vec_or_img_norm(spec)
            spec.body.append("x = x.reshape((x.shape[0], -1))")
        elif kind_in == "seq":
            spec.body += self.sequence(spec)
        elif kind_in == "tok":
            self.note("Embed")
            spec.body.append(f"x = nn.Embed(x, num_embeddings=11, features={self.width(spec)}"
                             f"{self.kinit(spec, 'embedding_init')})")
            spec.body.append(r.choice(("x = jnp.mean(x, axis=1)", "x = x.reshape((x.shape[0], -1))")))
        for _ in range(r.randint(1, 4)):
            spec.body += self.vec_statement(spec, subs)
        if top and self.chance(0.2):
            self.note("flag passed per call (model)")
            spec.flag = self.fresh(("scaled", "q1", "half", "use_gate"))
            spec.params.append(Param(spec.flag, "False", "False"))
            spec.body += [f"if {spec.flag}:", "    x = x * 0.5"]
        out = str(spec.out)
        if top and self.chance(0.5):
            out = self.hparam(spec, _OUT_NAMES, out, "int")
        if top and self.chance(0.25):
            self.shared_tail(spec, out)
        else:
            spec.body.append(self.dense(spec, out).replace("x = ", "return ", 1))
        return spec

    def shared_tail(self, spec: ModuleSpec, out: str) -> None:
        """A helper method returning a ``.shared`` layer, used by ``apply`` and by an
        ``@nn.module_method`` (issue 16's first case)."""
        self.note(".shared returned from a helper")
        helper = self.fresh(("_tail", "_head", "_make_decoder", "_readout"))
        spec.method = self.fresh(("decode", "head_only", "readout", "project"))
        spec.method_width = self.r.choice((3, 4, 5))
        out_param = next((p for p in spec.params if p.name == out), None)
        arg = f", {out}" if out_param else ""
        spec.methods.append(
            f"    def {helper}(self{arg}):\n"
            f"        return nn.Dense.shared(features={out}{self.kinit(spec)}, name='{helper.strip('_')}')\n")
        spec.body.append(f"x = nn.Dense(x, {spec.method_width}{self.kinit(spec)})")
        spec.body.append(f"return self.{helper}({out if out_param else ''})(x)")
        method_arg = ""
        if out_param:
            method_arg = f", {out}" + (f"={out_param.default}" if out_param.default is not None else "")
        spec.method_source = (
            f"    @nn.module_method\n"
            f"    def {spec.method}(self, z{method_arg}, **unused):\n"
            f"        return self.{helper}({out if out_param else ''})(z)\n")

    def sequence(self, spec: ModuleSpec) -> list[str]:
        """x: (B, T, F) -> (B, D): self-attention, or an LSTM cell (``.shared``, one
        module for every step) unrolled from ``initialize_carry``."""
        r = self.r
        if self.chance(0.5):
            self.note("SelfAttention")
            heads = r.choice(("1", "2"))
            qkv = r.choice(("4", "6"))
            return [f"x = nn.SelfAttention(x, num_heads={heads}, qkv_features={qkv}{self.kinit(spec)})",
                    r.choice(("x = jnp.mean(x, axis=1)", "x = x.reshape((x.shape[0], -1))"))]
        self.note("LSTMCell")
        cell = self.fresh(("cell", "lstm", "rnn", "step"))
        hidden = r.choice((3, 4, 5))
        inits = self.kinit(spec) + self.kinit(spec, "recurrent_kernel_init")
        return [f"{cell} = nn.LSTMCell.shared(name={cell!r}{inits})",
                f"carry = nn.LSTMCell.initialize_carry(jax.random.PRNGKey(0), (x.shape[0],), {hidden})",
                "for t in range(x.shape[1]):",
                f"    carry, h = {cell}(carry, x[:, t])",
                "x = h"]

    def vec_or_img_norm(self, spec: ModuleSpec) -> list[str]:
        if self.chance(0.5):
            self.note("BatchNorm")
            spec.train = spec.stateful = True
            return ["x = nn.BatchNorm(x, use_running_average=not train)", "x = nn.relu(x)"]
        return ["x = nn.relu(x)", "x = nn.avg_pool(x, (2, 2), strides=(2, 2))"]

    def module_source(self, spec: ModuleSpec) -> str:
        params = list(spec.params)
        required = [p for p in params if p.default is None]
        defaults = [p for p in params if p.default is not None]
        self.r.shuffle(defaults)
        sig = ["self", "x"] + [p.name for p in required]
        items = [f"{p.name}={p.default}" for p in defaults]
        if spec.train:
            items.insert(self.r.randint(0, len(items)), "train=True")
        sig += items
        lines = [f"class {spec.name}(nn.Module):"]
        lines += spec.methods
        lines.append(f"    def apply({', '.join(sig)}):")
        lines += [f"        {line}" for line in spec.body]
        if spec.method_source:
            lines += ["", spec.method_source.rstrip("\n")]
        return "\n".join(lines) + "\n"

    # ---- the program ------------------------------------------------------------------
    def program(self) -> Program:
        r = self.r
        n_subs = r.choice((0, 0, 1, 1, 2))
        subs: list[ModuleSpec] = []
        for _ in range(n_subs):
            subs.append(self.module("vec", list(subs), top=False))
        self.note(f"user modules: {n_subs + 1}")
        kind_in = r.choice(("vec", "vec", "vec", "img", "tok"))
        # sequences (attention, recurrent cells) come from a stream of their own: the programs
        # every other seed draws, and the bugs recorded against them, stay as they were
        if random.Random(self.seed * 7919 + 1).random() < 0.2:
            kind_in = "seq"
        top = self.module(kind_in, subs, top=True)
        self.note(f"input: {kind_in}")
        sources = [self.module_source(s) for s in subs]
        for i, sub in enumerate(subs):
            if self.chance(0.15):
                # a module class defined inside a function, made once at module level
                self.note("module class defined in a function")
                body = "".join(f"    {line}" if line.strip() else line
                               for line in sources[i].splitlines(keepends=True))
                sources[i] = f"def make_{sub.name.lower()}():\n{body}    return {sub.name}\n\n\n" \
                             f"{sub.name} = make_{sub.name.lower()}()\n"
        files: dict[str, str] = {}
        if subs and self.chance(0.2):
            # the submodules in a second file, imported by the program
            self.note("modules in a second file")
            library = self.r.choice(("layers", "blocks", "modules"))
            files[f"{library}.py"] = _HEADER + "\n\n" + "\n\n".join(sources)
            sources = []
            header = _HEADER + f"from {library} import np_init, {', '.join(s.name for s in subs)}\n"
            header = header.replace(_NP_INIT, "")
        else:
            header = _HEADER
        self.top_source = self.module_source(top)
        classes = "\n\n".join(sources + [self.top_source])
        shape, dtype = {"vec": ((BATCH, 5), "float32"), "img": ((BATCH, 6, 6, 3), "float32"),
                        "tok": ((BATCH, 4), "int32"), "seq": ((BATCH, 3, 4), "float32")}[kind_in]
        kwargs, usage = self.usage(top, shape, dtype)
        if random.Random(self.seed * 7919 + 4).random() < 0.1:  # a stream of its own, as above
            # jax's x64 on: legacy layers made float64 parameters (jax's default float)
            self.note("x64")
            header = header.replace("from flax import nn, optim\n",
                                    "from flax import nn, optim\n\njax.config.update('jax_enable_x64', True)\n")
        source = header + "\n\n" + classes + "\n\n" + "".join(f + "\n\n" for f in self.functions) + usage
        # an adaptive optimizer scales the rounding noise of gradients that are truly zero (a bias
        # before BatchNorm) to steps of its learning rate; the running averages then carry that
        # noise into eval mode. Module mode tells noise apart; the printed numbers cannot.
        deterministic = top.deterministic and not (top.stateful and self.adaptive)
        return Program(self.seed, source, top.name, [(shape, dtype)], kwargs, deterministic,
                       self.optimizer_func, self.constructs, files, self.replay)

    def optimizer(self) -> str:
        """An optimizer definition: one of each kind, sometimes wrapped or split
        over parameters (``MultiOptimizer``), sometimes chosen at run time."""
        if self.chance(0.08):
            self.note("optim.MultiOptimizer")
            return (f"optim.MultiOptimizer((optim.ModelParamTraversal(lambda path, _: 'bias' in path), "
                    f"{self.optimizer_def()}), (optim.ModelParamTraversal(lambda path, _: 'bias' not in path), "
                    f"{self.optimizer_def()}))")
        if self.chance(0.05):
            self.note("optim.WeightNorm")
            # verify finds the optax call inside the weight_norm helper, not the helper: no replay
            self.replay = False
            # around GradientDescent/Momentum only: an adaptive optimizer divides the direction's
            # gradient -- rounding noise where it is orthogonal to the kernel -- by its own size, and
            # the two sides' noise becomes steps of the learning rate (tests/test_optimizers.py)
            # and at a small learning rate: from 0.01 on the legacy dynamics are ill-conditioned
            return f"optim.WeightNorm({self.optimizer_def(self.r.choice(('GradientDescent', 'Momentum')), '0.005')})"
        if self.chance(0.12):
            self.note("optimizer chosen at run time")
            names = self.r.sample(("adam", "sgd", "momentum", "lamb", "rms"), 2)
            defs = [self.optimizer_def() for _ in names]
            self.functions.append("\n".join(
                [f"def make_optimizer(name={names[0]!r}):"] +
                [f"    if name == {n!r}:\n        return {d}" for n, d in zip(names[1:], defs[1:])] +
                [f"    return {defs[0]}"]) + "\n")
            self.optimizer_func = "make_optimizer"
            return self.r.choice(("make_optimizer()", f"make_optimizer({names[0]!r})"))
        return self.optimizer_def()

    def optimizer_def(self, kind: str | None = None, lr: str | None = None) -> str:
        r = self.r
        kind = kind or r.choice(OPTIMIZERS)
        self.adaptive |= kind not in ("GradientDescent", "Momentum")
        self.note(f"optimizer: {kind}")
        lr = lr or {"GradientDescent": "0.1", "Momentum": "0.1", "Adagrad": "0.1", "LARS": "0.1",
                    "Adadelta": "1.0"}.get(kind, "0.01")
        args = [lr if self.chance(0.4) else f"learning_rate={lr}"]
        extra = {"Momentum": ["beta=0.8", "nesterov=True", "weight_decay=1e-3"],
                 "Adam": ["beta1=0.8", "beta2=0.99", "weight_decay=1e-3", "eps=1e-6"],
                 "RMSProp": ["beta2=0.9", "eps=1e-6"], "LAMB": ["weight_decay=1e-3", "beta1=0.8"],
                 "LARS": ["weight_decay=1e-3", "beta=0.8"], "Adafactor": ["beta1=0.9"],
                 "Adadelta": ["weight_decay=1e-3", "rho=0.8"], "AdaBelief": ["weight_decay=1e-3"],
                 "GradientDescent": [], "Adagrad": ["eps=1e-6"]}[kind]
        for e in extra:
            if self.chance(0.3):
                args.append(e)
                if e.startswith("weight_decay"):
                    self.note("optimizer weight decay")
        return f"optim.{kind}({', '.join(args)})"

    def usage(self, top: ModuleSpec, shape: tuple, dtype: str) -> tuple[dict, str]:
        r = self.r
        kwargs: dict = {}
        # the model's required hyper-parameters go through .partial (sometimes the defaults too)
        partial_args = []
        for p in top.params:
            if p.default is None or (self.chance(0.15) and _literal(p.value) is not None):
                partial_args.append(f"{p.name}={p.value}")
                if p.default is None:  # a default given again is the default: module mode needs only these
                    kwargs[p.name] = _literal(p.value)
        if partial_args:
            self.note("model .partial(...)")
            model_def = f"{top.name}.partial({', '.join(partial_args)})"
        else:
            model_def = top.name
        data = ("jnp.asarray(rs.randn(%s), jnp.float32)" % ", ".join(map(str, shape)) if dtype == "float32"
                else "jnp.asarray(rs.randint(0, 11, (%s)), jnp.int32)" % ", ".join(map(str, shape)))
        init_shape = (1,) + tuple(shape[1:]) if self.chance(0.5) else shape
        if self.chance(0.5):
            self.note("init_by_shape")
            init = (f"_, params = model_def.init_by_shape(rng, [({init_shape!r}, jnp.{dtype})])"
                    if dtype != "float32" or self.chance(0.5) else
                    f"_, params = model_def.init_by_shape(rng, [{init_shape!r}])")
        else:
            self.note("init")
            init = "_, params = model_def.init(rng, x)"
        # Module.call(params, x) on the params, no nn.Model (a module method is called on the Model)
        functional = not top.method and self.chance(0.25)
        lines = ["def main():", "    rs = np.random.RandomState(0)", f"    x = {data}",
                 f"    y = jnp.asarray(rs.randn({shape[0]}, {top.out}), jnp.float32)",
                 "    rng = jax.random.PRNGKey(0)", f"    model_def = {model_def}"]
        if random.Random(self.seed * 7919 + 3).random() < 0.15:  # a stream of its own, as above
            # the class picked by a condition from it and an identical twin, the definition bound in
            # each arm of an if (the run always takes the first: module mode compares that class)
            self.note("module class picked by a condition")
            twin = f"{top.name}Alt"
            self.functions.append(self.top_source.replace(f"class {top.name}(", f"class {twin}(", 1))
            picked = model_def.replace(top.name, "model_type", 1)
            lines[-1:] = [f"    model_type = {top.name} if x.shape[0] > 1 else {twin}",
                          "    if x.shape[0] > 1:", f"        model_def = {picked}",
                          "    else:", f"        model_def = {picked}"]
        indent = "    "
        if top.stateful:
            self.note("nn.stateful")
            lines.append(f"{indent}with nn.stateful() as state:")
            indent += "    "
        if top.stochastic:
            self.note("nn.stochastic")
            lines.append(f"{indent}with nn.stochastic(jax.random.PRNGKey(1)):")
            indent += "    "
        lines.append(indent + init)
        if functional:
            self.note("Module.call (no nn.Model)")
            target = "params"
        else:
            self.note("nn.Model")
            lines.append("    model = nn.Model(model_def, params)")
            target = "model"
        st = ", state" if top.stateful else ""
        key = ", jax.random.fold_in(rng, step)" if top.stochastic else ""
        schedule = self.chance(0.2)
        if schedule:
            self.note("learning-rate schedule")
        steps = r.choice((2, 3))
        trainer = self.chance(0.25)
        if trainer:
            self.note("optimizer in an object attribute")
            # the definition handed in (the tool leaves it with a TODO), or built by the class itself
            handed = self.chance(0.4)
            trainer_def = self.optimizer()
            if handed:
                self.note("optimizer definition handed to a class")
            lines += [f"    trainer = Trainer({target}, {trainer_def})" if handed else
                      f"    trainer = Trainer({target})",
                      f"    for step in range({steps}):",
                      f"        loss = trainer.step(x, y{st}{key})" if not top.stateful else
                      f"        state, loss = trainer.step(x, y{st}{key})",
                      "        print('step', step, 'loss', float(loss))",
                      f"    print('eval', float(evaluate(trainer.optimizer.target{st}, x, y)))"]
        else:
            lines += [f"    optimizer = {self.optimizer()}.create({target})",
                      f"    for step in range({steps}):",
                      f"        optimizer{st}, loss = train_step(optimizer{st}, x, y{key})",
                      "        print('step', step, 'loss', float(loss))",
                      f"    print('eval', float(evaluate(optimizer.target{st}, x, y)))"]
        if top.method:
            self.note("@nn.module_method")
            call = (f"model_def.{top.method}(optimizer.target, z)" if functional else
                    f"optimizer.target.{top.method}(z)")
            opt = "trainer.optimizer" if trainer else "optimizer"
            call = call.replace("optimizer.", opt + ".")
            lines += [f"    z = jnp.asarray(rs.randn(3, {top.method_width}), jnp.float32)",
                      f"    print('method', float(jnp.sum({call})))"]
        flag = f", {top.flag}=True" if top.flag else ""
        if (top.stateful and not top.own_state and not top.stochastic
                and random.Random(self.seed * 7919 + 5).random() < 0.3):  # a stream of its own, as above
            # BatchNorm applied in train mode with no nn.stateful around it: legacy normalised with
            # the batch's statistics and kept nothing
            self.note("BatchNorm outside nn.stateful")
            target = ("trainer." if trainer else "") + "optimizer.target"
            call = f"model_def.call({target}, x{flag})" if functional else f"{target}(x{flag})"
            lines.append(f"    print('train mode', float(jnp.sum({call})))")
        main = "\n".join(lines) + "\n"
        if top.flag:
            kwargs[top.flag] = True
        apply = f"model_def.call(model, x{flag})" if functional else f"model(x{flag})"
        step = [f"@jax.jit", f"def train_step(optimizer{st}, x, y{', key' if top.stochastic else ''}):",
                "    def loss_fn(model):"]
        indent = "        "
        if top.stateful:
            step.append(f"{indent}with nn.stateful(state) as new_state:")
            indent += "    "
        if top.stochastic:
            step.append(f"{indent}with nn.stochastic(key):")
            indent += "    "
        step.append(f"{indent}pred = {apply}")
        lr = ("learning_rate=0.05 * 0.5 ** optimizer.state.step" if schedule else "")
        # the legacy optimizer.optimize(loss_fn), which calls loss_fn with the target, from a stream
        # of its own (like the sequences above)
        optimize = random.Random(self.seed * 7919 + 2).random() < 0.25
        if optimize:
            self.note("optimizer.optimize")
        if top.stateful and optimize:
            step += ["        return jnp.mean((pred - y) ** 2), new_state",
                     f"    new_optimizer, loss, new_state = optimizer.optimize(loss_fn{', ' + lr if lr else ''})",
                     "    return new_optimizer, new_state, loss"]
        elif top.stateful:
            step += ["        return jnp.mean((pred - y) ** 2), new_state",
                     "    (loss, new_state), grad = jax.value_and_grad(loss_fn, has_aux=True)(optimizer.target)",
                     f"    return optimizer.apply_gradient(grad{', ' + lr if lr else ''}), new_state, loss"]
        elif optimize:
            step += ["        return jnp.mean((pred - y) ** 2)",
                     f"    new_optimizer, loss = optimizer.optimize(loss_fn{', ' + lr if lr else ''})",
                     "    return new_optimizer, loss"]
        else:
            step += ["        return jnp.mean((pred - y) ** 2)",
                     "    loss, grad = jax.value_and_grad(loss_fn)(optimizer.target)",
                     f"    return optimizer.apply_gradient(grad{', ' + lr if lr else ''}), loss"]
        ev = [f"def evaluate(model{st}, x, y):"]
        if self.chance(0.3):
            self.note("jitted evaluation")
            ev.insert(0, "@jax.jit")
        call = (f"model_def.call(model, x{', train=False' if top.train else ''})" if functional else
                f"model(x{', train=False' if top.train else ''})")
        if functional:
            ev = [e.replace("def evaluate(model", "def evaluate(model_def, model") for e in ev]
            if ev[0] == "@jax.jit":
                ev[0] = "@functools.partial(jax.jit, static_argnums=0)"
            main = main.replace("float(evaluate(", "float(evaluate(model_def, ")
            step = [e.replace("def train_step(optimizer", "def train_step(model_def, optimizer") for e in step]
            step[0] = "@functools.partial(jax.jit, static_argnums=0)"
            main = main.replace("train_step(optimizer", "train_step(model_def, optimizer")
        if top.stateful:
            ev += ["    with nn.stateful(state, mutable=False):", f"        pred = {call}"]
        else:
            ev += [f"    pred = {call}"]
        ev.append("    return jnp.mean((pred - y) ** 2)")
        text = "\n".join(step) + "\n\n\n" + "\n".join(ev) + "\n\n\n"
        if trainer:
            ret = "self.optimizer, state, loss" if top.stateful else "self.optimizer, loss"
            md = "model_def, " if functional else ""
            text += "\n".join([
                "class Trainer:",
                "    def __init__(self, target, optimizer_def):" if handed else "    def __init__(self, target):",
                "        self.optimizer = optimizer_def.create(target)" if handed else
                f"        self.optimizer = {trainer_def}.create(target)",
                "",
                f"    def step(self, x, y{st}{', key' if top.stochastic else ''}):",
                f"        {ret} = train_step({md}self.optimizer{st}, x, y{', key' if top.stochastic else ''})",
                "        return " + ("state, loss" if top.stateful else "loss"),
            ]) + "\n\n\n"
            if functional:
                text = text.replace("train_step(model_def, self", "train_step(self.model_def, self")
                text = text.replace("    def __init__(self, target", "    def __init__(self, model_def, target")
                text = text.replace("        self.optimizer = ", "        self.model_def = model_def\n"
                                    "        self.optimizer = ")
                main = main.replace("Trainer(params", "Trainer(model_def, params")
        text += main + _FOOTER
        return kwargs, text


_HEADER = '''"""A generated legacy program (bench/fuzz)."""
import functools

import numpy as np
import jax
import jax.numpy as jnp
from flax import nn, optim
'''

_NP_INIT = '''

def np_init(seed, scale=0.4):
    def init(key, shape, dtype=jnp.float32):
        return jnp.asarray(np.random.RandomState(seed).uniform(-scale, scale, shape), dtype)
    return init
'''
_HEADER += _NP_INIT

_FOOTER = '''

if __name__ == '__main__':
    main()
'''


def _literal(text: str):
    """The value of a literal argument (what module mode passes as a keyword), else None."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None


def generate(seed: int) -> Program:
    return _Gen(seed).program()
