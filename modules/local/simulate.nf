// A tilt series of one sample under one grid condition (Parakeet/MULTEM, or the fast engine).
process SIMULATE {
    tag "${sample}_c${condition}"
    label 'process_high'
    label 'process_gpu'
    container "${params.container_prefix}-parakeet-sim:${params.container_tag}"

    input:
    tuple val(sample), path(manifest), val(condition), val(seed)
    path grid
    path structures                 // structure files and NMA folders the manifest names

    output:
    tuple val(sample), val(condition), path("${tomo}/tilt_series.mrc"), path("${tomo}/tilt_series.tlt"), path("${tomo}/acquisition.json"), emit: tilt_series
    // randomized grid: the molecules simulated (those in the slab), the targets' manifest
    tuple val(sample), val(condition), path("${tomo}/sample.json"), optional: true, emit: sample
    path "versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    tomo = String.format('%s_c%02d', sample, condition as int)
    """
    templearn-parakeet-sim simulate ${manifest} --out ${tomo} --grid ${grid} --condition ${condition} \\
        --seed ${seed} --structures . ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        templearn: \$(python -c 'import templearn; print(templearn.__version__)')
    END_VERSIONS
    """

    stub:
    tomo = String.format('%s_c%02d', sample, condition as int)
    """
    mkdir -p ${tomo} && touch ${tomo}/tilt_series.mrc ${tomo}/tilt_series.tlt ${tomo}/acquisition.json ${tomo}/sample.json
    echo '"${task.process}": {templearn: stub}' > versions.yml
    """
}
