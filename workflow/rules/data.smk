# Experience: the shared random prefill, the collectors of every iteration, reward-free pretraining.
#
# A store is never a declared output: Snakemake deletes the outputs of a job that did not finish,
# and a killed collector must resume its store. Each job declares the store's small JSON marker
# (a dataset manifest listing the store), written atomically once the store is complete.
#
# Every value in a shell command is quoted (`:q`): paths may hold spaces, quotes, `$(...)` or
# backticks, and must reach the command as one argument each, never as shell code.


rule prefill:
    """Random-policy steps for one game: one shared store, reused by every seed and variant."""
    output:
        marker=L.dataset_marker("{game}", "{name}"),
    params:
        config=CONFIG_SNAPSHOT,
        store=lambda w: L.dataset_store(w.game, w.name),
        steps=CFG.prefill.steps,
        envs=CFG.prefill.envs,
    wildcard_constraints:
        name=re.escape(CFG.prefill.name),
    threads: CFG.prefill.envs
    log:
        L.log("prefill", "{game}", "{name}"),
    conda:
        CONDA_ENV
    shell:
        "dreamer-pipeline prefill --config {params.config:q} --game {wildcards.game:q} "
        "--steps {params.steps:q} --envs {params.envs:q} --store {params.store:q} --marker {output.marker:q} "
        "> {log:q} 2>&1"


from dreamer_pipeline.pipelines.stages.actor_gate import HELD_OUT_SEED, gate_enabled, held_out_name

if gate_enabled(CFG):

    rule held_out_store:
        """Random play of one game with another seed, read only by the actor gate (train.actor_gate): shared."""
        output:
            marker=L.dataset_marker("{game}", "{name}"),
        params:
            config=CONFIG_SNAPSHOT,
            store=lambda w: L.dataset_store(w.game, w.name),
            steps=CFG.train.actor_gate.held_out_steps,
            envs=CFG.prefill.envs,
            seed=HELD_OUT_SEED,
        wildcard_constraints:
            name=re.escape(held_out_name(CFG)),
        threads: CFG.prefill.envs
        log:
            L.log("held_out_store", "{game}", "{name}"),
        conda:
            CONDA_ENV
        shell:
            "dreamer-pipeline prefill --config {params.config:q} --game {wildcards.game:q} --seed {params.seed:q} "
            "--steps {params.steps:q} --envs {params.envs:q} --store {params.store:q} --marker {output.marker:q} "
            "> {log:q} 2>&1"


# With loop.online the online stage (train.smk) collects iterations k >= 1 itself.
if not CFG.loop.online:

    rule collect:
        """Iteration k's experience from the actor of iteration k-1: one of `collectors` parallel jobs.

        A store made by another actor (k-1 was retrained, e.g. `-R`) is moved aside and collected anew."""
        input:
            agent=lambda w: W.agent(w.game, w.seed, int(w.iteration) - 1),
        output:
            marker=L.shard_marker("{game}", "{variant}", "{seed}", "{iteration}", "{shard}"),
        params:
            config=CONFIG_SNAPSHOT,
            store=lambda w: L.shard_store(w.game, w.variant, w.seed, w.iteration, w.shard),
            steps=lambda w: W.shard_steps(w.iteration, w.shard),
            seed=lambda w: W.shard_seed(w.seed, w.iteration, w.shard),
            envs=CFG.collect.envs,
            mode=CFG.collect.policy_mode,
            device=CFG.collect.device,
        threads: CFG.collect.threads
        log:
            L.log("collect", "{game}", "{variant}", "seed{seed}", "iter{iteration}", "shard{shard}"),
        conda:
            CONDA_ENV
        shell:
            "dreamer-pipeline collect --game {wildcards.game:q} --store {params.store:q} --steps {params.steps:q} "
            "--envs {params.envs:q} --threads {threads:q} --seed {params.seed:q} --config {params.config:q} "
            "--policy {input.agent:q} --policy-mode {params.mode:q} --device {params.device:q} --marker {output.marker:q} "
            "--set-aside-superseded > {log:q} 2>&1"


if CFG.pretrain is not None:

    rule pretrain_world_model:
        """A world model from named datasets without reward learning (reward-free pretraining)."""
        input:
            datasets=lambda w: W.pretrain_sources(w.game)[0],
        output:
            checkpoint=L.pretrained_world_model("{game}", "{name}"),
        params:
            config=CONFIG_SNAPSHOT,
            external=lambda w: W.pretrain_sources(w.game)[1],  # a list: `:q` quotes each entry
            updates=CFG.pretrain.updates,
        wildcard_constraints:
            name=re.escape(CFG.pretrain.name),
        resources:
            gpu=1,
        log:
            L.log("pretrain_world_model", "{game}", "{name}"),
        conda:
            CONDA_ENV
        shell:
            "dreamer-pipeline pretrain-world-model --config {params.config:q} --game {wildcards.game:q} "
            "--updates {params.updates:q} --out {output.checkpoint:q} {input.datasets:q} {params.external:q} "
            "> {log:q} 2>&1"
