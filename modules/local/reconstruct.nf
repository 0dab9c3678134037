// Binning and weighted back projection (RADIAL 0.5,0.5) of one tilt series.
process RECONSTRUCT {
    tag "${sample}_c${condition}"
    label 'process_medium'
    container "${params.container_prefix}-imod-recon:${params.container_tag}"

    input:
    tuple val(sample), val(condition), path(tilt_series), path(tlt), path(acquisition)

    output:
    tuple val(sample), val(condition), path("${tomo}/tomogram.mrc"), emit: tomogram
    path "versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    tomo = String.format('%s_c%02d', sample, condition as int)
    """
    templearn-imod-recon reconstruct ${tilt_series} --out ${tomo} --tlt ${tlt} --acquisition ${acquisition} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        templearn: \$(python -c 'import templearn; print(templearn.__version__)')
    END_VERSIONS
    """

    stub:
    tomo = String.format('%s_c%02d', sample, condition as int)
    """
    mkdir -p ${tomo} && touch ${tomo}/tomogram.mrc
    echo '"${task.process}": {templearn: stub}' > versions.yml
    """
}
