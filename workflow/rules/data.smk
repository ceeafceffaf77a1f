# Experience: the shared random prefill, the collectors of every iteration, reward-free pretraining.
#
# A store is never a declared output: Snakemake deletes the outputs of a job that did not finish,
# and a killed collector must resume its store. Each job declares the store's small JSON marker
# (a dataset manifest listing the store), written atomically once the store is complete.


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
    shell:
        "dreamer-pipeline prefill --config {params.config} --game {wildcards.game} "
        "--steps {params.steps} --envs {params.envs} --store {params.store} --marker {output.marker} "
        "> {log} 2>&1"


# With loop.online the online stage (train.smk) collects iterations k >= 1 itself.
if not CFG.loop.online:

    rule collect:
        """Iteration k's experience from the actor of iteration k-1: one of `collectors` parallel jobs."""
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
        shell:
            "dreamer-pipeline collect --game {wildcards.game} --store {params.store} --steps {params.steps} "
            "--envs {params.envs} --threads {threads} --seed {params.seed} --config {params.config} "
            "--policy {input.agent} --policy-mode {params.mode} --device {params.device} --marker {output.marker} "
            "> {log} 2>&1"


if CFG.pretrain is not None:

    rule pretrain_world_model:
        """A world model from named datasets without reward learning (reward-free pretraining)."""
        input:
            datasets=lambda w: W.pretrain_sources(w.game)[0],
        output:
            checkpoint=L.pretrained_world_model("{game}", "{name}"),
        params:
            config=CONFIG_SNAPSHOT,
            external=lambda w: " ".join(W.pretrain_sources(w.game)[1]),
            updates=CFG.pretrain.updates,
        wildcard_constraints:
            name=re.escape(CFG.pretrain.name),
        resources:
            gpu=1,
        log:
            L.log("pretrain_world_model", "{game}", "{name}"),
        shell:
            "dreamer-pipeline pretrain-world-model --config {params.config} --game {wildcards.game} "
            "--updates {params.updates} --out {output.checkpoint} {input.datasets} {params.external} "
            "> {log} 2>&1"
